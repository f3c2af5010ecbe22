"""``ibet bench ...``: side-by-side benchmarks, each reporting a ratio against a baseline run beside it."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from ibet.cli_support import ConfigOption
from ibet.cli_support import fail as _fail
from ibet.exceptions import IbetError

bench_app = typer.Typer(help="Side-by-side benchmarks that report a ratio against a baseline.", no_args_is_help=True)


@contextmanager
def _bench_broker(bootstrap: str | None) -> Iterator[str]:
    """The given broker, or a local one started for the benchmark and stopped after it."""
    from ibet_testing.kafka_broker import LocalKafkaBroker

    logging.basicConfig(level=logging.WARNING)
    if bootstrap is not None:
        yield bootstrap
        return
    broker = LocalKafkaBroker(Path(tempfile.mkdtemp(prefix="ibet-bench-kafka-")), heap_mb=1024)
    try:
        started = broker.start()
    except IbetError as exc:
        _fail(str(exc))
    try:
        yield started
    finally:
        broker.stop()


@bench_app.command("bus")
def bench_bus(
    bootstrap: Annotated[str | None, typer.Option(help="host:port of a broker; default: start a local one.")] = None,
    large: Annotated[int, typer.Option(help="Messages per round of 200 KB (JPEG-sized) payloads.")] = 500,
    small: Annotated[int, typer.Option(help="Messages per round of 1 KB payloads.")] = 20000,
    rounds: Annotated[int, typer.Option(help="Rounds per side, alternating ours and raw.")] = 5,
) -> None:
    """Our Kafka producer path against raw kafka-python, same settings, same broker: ratio ours/raw."""
    from ibet.config import KafkaSettings
    from ibet_app.bench.bus import Case, run_bus_bench
    from ibet_app.bench.report import report

    cases = [Case("200KB", 200 * 1024, large), Case("1KB", 1024, small)]
    with _bench_broker(bootstrap) as servers:
        results = run_bus_bench(KafkaSettings(bootstrap_servers=[servers]), cases, rounds)
    rows = [[label, r["ours_msgs_per_s"], r["raw_msgs_per_s"], r["ours_mb_per_s"], r["raw_mb_per_s"], r["ratio"]]
            for label, r in results.items()]
    summary = {"bench": "bus", "baseline": "raw kafka-python, same settings", "ratio": min(r["ratio"] for r in results.values()),
               **{f"{label}_{k}": v for label, r in results.items() for k, v in r.items()}}
    report("bench-bus", "ibet bench bus (median of rounds)", ["payload", "ours msg/s", "raw msg/s", "ours MB/s",
           "raw MB/s", "ratio ours/raw"], rows, summary)


@bench_app.command("ingest")
def bench_ingest(
    bootstrap: Annotated[str | None, typer.Option(help="host:port of a broker; default: start a local one.")] = None,
    frames: Annotated[int, typer.Option(help="Frames per round.")] = 200,
    clients: Annotated[int, typer.Option(help="Concurrent drones (client threads).")] = 4,
    rounds: Annotated[int, typer.Option(help="Rounds per side, alternating API and raw.")] = 3,
    flood_rps: Annotated[float, typer.Option(help="Wrong tokens per second in the flood part; 0: skip it.")] = 2.0,
    flood_pushes: Annotated[int, typer.Option(help="The drone's pushes quiet, and again under the flood.")] = 100,
) -> None:
    """Push-API frames/s and MB/s against raw kafka-python producing the same frames; HTTP overhead;
    a real drone's p50/p99 with and without a wrong-token flood."""
    from ibet.config import KafkaSettings
    from ibet_app.bench.ingest import run_ingest_bench, run_token_flood_bench
    from ibet_app.bench.report import report

    with _bench_broker(bootstrap) as servers:
        kafka = KafkaSettings(bootstrap_servers=[servers])
        r = run_ingest_bench(kafka, frames, clients, rounds)
        flood = run_token_flood_bench(kafka, flood_pushes, flood_rps) if flood_rps > 0 else None
    rows = [["push API", r["api_frames_per_s"], r["api_mb_per_s"], r["api_mean_latency_ms"]],
            ["raw kafka-python", r["raw_frames_per_s"], r["raw_mb_per_s"], r["raw_mean_latency_ms"]]]
    report("bench-ingest", f"ibet bench ingest ({clients} clients, {frames} frames/round, ratio {r['ratio']})",
           ["path", "frames/s", "MB/s", "mean latency ms"], rows,
           {"bench": "ingest", "baseline": "raw kafka-python send().get(), same frames and headers", **r})
    if flood is not None:
        rows = [[h, f["quiet_p50_ms"], f["quiet_p99_ms"], f["flooded_p50_ms"], f["flooded_p99_ms"], f["ratio_p50"],
                 f["ratio_p99"], f["wrong_tokens_per_s"]] for h, f in flood.items() if isinstance(f, dict)]
        report("bench-ingest-flood", f"ibet bench ingest: one drone's push latency under {flood_rps:g} wrong tokens/s "
               f"({flood_pushes} pushes each)", ["stored hashes", "quiet p50 ms", "quiet p99 ms", "flooded p50 ms",
               "flooded p99 ms", "ratio p50", "ratio p99", "wrong tokens/s"], rows,
               {"bench": "ingest-flood", "baseline": "the same drone without the flood; argon2id hashes as stored "
                "before", **flood})


@bench_app.command("ingest-stream")
def bench_ingest_stream(
    file: Annotated[Path | None, typer.Option(help="A .ts/.mp4 to measure; default: one written here.")] = None,
    rounds: Annotated[int, typer.Option(help="Rounds per side, alternating bare PyAV and ibet.")] = 3,
    seconds: Annotated[float, typer.Option(help="Length of the written stream.")] = 20.0,
    fps: Annotated[float, typer.Option(help="Its frame rate.")] = 30.0,
    width: Annotated[int, typer.Option(help="Its width in px.")] = 1280,
    height: Annotated[int, typer.Option(help="Its height in px.")] = 720,
    rate_hz: Annotated[float, typer.Option(help="The drone's detection rate (frames kept per second).")] = 2.0,
) -> None:
    """`ibet ingest stream` (decode + KLV pairing + sampling + JPEG) against a bare PyAV decode of the same file:
    pictures/s, CPU per stream second, the ratio, and how many such drone streams one core carries."""
    from ibet_app.bench.report import report
    from ibet_app.bench.stream import run_stream_bench

    with tempfile.TemporaryDirectory(prefix="ibet-bench-stream-") as workdir:
        r = run_stream_bench(file, rounds, seconds, fps, width, height, rate_hz, Path(workdir))
    rows = [["bare PyAV decode", r["bare_pictures_per_s"], r["bare_cpu_s_per_stream_s"]],
            ["ibet ingest stream", r["ibet_pictures_per_s"], r["ibet_cpu_s_per_stream_s"]]]
    report("bench-ingest-stream", f"ibet bench ingest-stream ({r['stream_s']} s stream, {r['pictures']} pictures, kept at "
           f"{rate_hz:g} Hz; CPU ratio {r['ratio_cpu']}, {r['streams_per_core']} streams per core)",
           ["path", "pictures/s", "CPU s per stream s"], rows,
           {"bench": "ingest-stream", "baseline": "bare PyAV decode of every picture of the same file", **r})


def _bench_fuse(
    targets: Annotated[str, typer.Option(help="Comma-separated numbers of simultaneous targets.")] = "10,100,500",
    scans: Annotated[int, typer.Option(help="Scans at 2 Hz (the largest case runs fewer).")] = 60,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic scene.")] = 0,
    stonesoup_max: Annotated[int, typer.Option(help="Run Stone Soup up to this many targets (it is O(tracks x "
                                                    "detections)); above it only ours runs.")] = 1000,
) -> None:
    """Georeference + track + border against Stone Soup (GNN + Kalman) on the same measurements, and
    the saved state (changelog every frame, at the checkpoint interval, the whole snapshot before)."""
    from ibet_app.bench.fuse import bench_fuse_command

    bench_fuse_command(targets, scans, seed, stonesoup_max)


bench_app.command("fuse")(_bench_fuse)


@bench_app.command("track")
def bench_track(
    fps: Annotated[str, typer.Option(help="Comma-separated frame rates; the 25 fps sequences keep every round(25/fps)-th frame.")]
    = "25,5,2",
    seed: Annotated[int, typer.Option(help="Seed of the detection noise.")] = 0,
    scenarios: Annotated[bool, typer.Option(help="Instead: the share of detected frames with a per-sensor id, per "
                                                   "sensor and target, on every shipped scenario with the real detector.")]
    = False,
    scenario_seed: Annotated[int, typer.Option(help="Simulator seed of --scenarios (training used 1-6 and 101).")] = 211,
    config: ConfigOption = None,
) -> None:
    """The per-sensor image tracker against roboflow trackers ByteTrack and OC-SORT on TUD-Campus and
    TUD-Stadtmitte (py-motmetrics' data, seeded noisy detections): MOTA, IDF1, ID switches, ms/frame."""
    if scenarios:
        from ibet_app.bench.track import bench_track_scenarios_command

        bench_track_scenarios_command(config, scenario_seed)
        return
    from ibet_app.bench.track import bench_track_command

    bench_track_command(fps, seed)


@bench_app.command("alerts")
def bench_alerts(
    rates: Annotated[str, typer.Option(help="Comma-separated event rates (events/s).")] = "10,100,1000",
    seconds: Annotated[float, typer.Option(help="Seconds of events at each rate.")] = 3.0,
    db: Annotated[str, typer.Option(help="Comma-separated outbox databases: sqlite, postgres.")] = "sqlite",
    postgres_url: Annotated[str | None, typer.Option(help="A PostgreSQL server to use; default: start one "
                                                            "(Debian's package).")] = None,
    partner_latency_ms: Annotated[float, typer.Option(min=0, max=10_000, help="The partner answers each POST "
                                                      "this long after it arrived (a partner across a WAN).")] = 0.0,
) -> None:
    """Event -> webhook delivered latency p50/p99 through the alert service vs a bare HTTP POST,
    and the deliveries per second that reached the partner, per outbox database."""
    from ibet_app.bench.alerts import run_alerts_bench
    from ibet_app.bench.report import report

    databases = [d.strip() for d in db.split(",") if d.strip()]
    if not databases or set(databases) - {"sqlite", "postgres"}:
        raise typer.BadParameter(f"--db takes sqlite and/or postgres, got {db!r}")
    results = run_alerts_bench([float(r) for r in rates.split(",") if r], seconds, databases=databases,
                               postgres_url=postgres_url, partner_latency_ms=partner_latency_ms)
    columns = ["db", "events/s", "partner ms", "pipeline p50 ms", "pipeline p99 ms", "bare POST p50 ms", "bare POST p99 ms",
               "ratio p50", "ratio p99", "delivered (pipeline)", "delivered (bare)", "deliveries/s at partner"]
    rows = [[r["db"], r["events_per_s"], r["partner_latency_ms"], r["pipeline_p50_ms"], r["pipeline_p99_ms"], r["bare_post_p50_ms"],
             r["bare_post_p99_ms"], r["ratio_p50"], r["ratio_p99"], r["pipeline_delivered"], r["bare_delivered"],
             r["pipeline_deliveries_per_s"]] for r in results]
    report("bench-alerts", f"ibet bench alerts ({seconds:g} s per rate)", columns, rows,
           {"bench": "alerts", "baseline": "bare httpx POST of the same signed webhook body, same process, "
                        "to a partner that answers at once",
            "results": results})



def _mount_bench_commands() -> None:
    """Benchmarks whose commands live beside their code."""
    from ibet_app.bench.detect import bench_detect_command
    from ibet_app.bench.e2e import bench_e2e_command
    from ibet_app.bench.scale import bench_scale_command

    bench_app.command("detect")(bench_detect_command)
    bench_app.command("scale")(bench_scale_command)
    bench_app.command("e2e")(bench_e2e_command)


_mount_bench_commands()
