"""The ``ibet`` command line: run a stage, manage topics, check configuration, demo, benchmarks."""

from __future__ import annotations

import logging
import platform
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from ibet import __version__, topics
from ibet.config import IbetConfig, load_config
from ibet.exceptions import IbetError
from ibet.registry import Registry, load_registry
from ingest.cli import ingest_app, sensors_app
from sim.cli import sim_app

app = typer.Typer(help="ibet: sensor fusion for Integrated Border Enforcement Teams.", no_args_is_help=True)
topics_app = typer.Typer(help="Kafka topics of the pipeline.", no_args_is_help=True)
bench_app = typer.Typer(help="Side-by-side benchmarks that report a ratio against a baseline.", no_args_is_help=True)
config_app = typer.Typer(help="Configuration and registry.", no_args_is_help=True)
app.add_typer(topics_app, name="topics")
app.add_typer(bench_app, name="bench")
app.add_typer(config_app, name="config")
app.add_typer(sim_app, name="sim")
app.add_typer(ingest_app, name="ingest")
app.add_typer(sensors_app, name="sensors")

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML config file (default: $IBET_CONFIG or config/ibet.yaml if present)."),
]


def _fail(message: str) -> NoReturn:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def _load(config_path: Path | None) -> tuple[IbetConfig, Registry]:
    """Configuration and registry, validated; a bad one stops the program naming what to fix."""
    try:
        config = load_config(config_path)
        registry = load_registry(config.registry_file())
    except IbetError as exc:
        _fail(str(exc))
    logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for chatty in ("alembic", "mail.log", "httpx", "uvicorn.access", "kafka"):  # per-request / per-migration lines
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLevelName(config.log_level)))
    return config, registry


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


@app.command("version")
def version_cmd() -> None:
    """Print the versions of ibet and of the components it is built on."""
    typer.echo(f"ibet {__version__} (Python {platform.python_version()})")
    for name in ("kafka-python", "pydantic", "ultralytics", "opencv-python", "geopandas", "prometheus-client"):
        typer.echo(f"  {name} {_package_version(name)}")


@app.command("run")
def run_cmd(
    stage: Annotated[str, typer.Argument(help="Stage to run: ingest, detect, fuse or alerts.")],
    config: ConfigOption = None,
) -> None:
    """Run one stage as a consumer-group worker on Kafka, with /metrics, until SIGTERM/SIGINT."""
    from ibet.bus import open_bus
    from ibet.metrics import serve_metrics
    from ibet.runner import StageRunner
    from ibet.stages import build_stage

    cfg, registry = _load(config)
    if cfg.bus.kind != "kafka":
        _fail("'ibet run' runs one stage of a distributed pipeline: set bus.kind: kafka (or IBET_BUS__KIND=kafka); "
              "'ibet demo' runs every stage in one process")
    try:
        built = build_stage(stage, cfg, registry)
    except IbetError as exc:
        _fail(str(exc))
    serve_metrics(cfg.metrics)
    stats = StageRunner(built, open_bus(cfg.bus), cfg.runner).run()
    typer.echo(f"{stage} stopped after {stats.batches} batches: {stats.consumed} consumed, {stats.produced} produced, "
               f"{stats.dead_lettered} dead-lettered")


@app.command("demo")
def demo_cmd(
    config: ConfigOption = None,
    scenario: Annotated[str, typer.Option(help="Shipped scenario (ibet sim list) or YAML file to feed; '' for none.")]
    = "foot-crossing-forest-vista",
    seed: Annotated[int | None, typer.Option(help="Seed of the scenario run.")] = None,
    realtime: Annotated[bool, typer.Option("--realtime/--fast", help="Feed frames at their capture times, or "
                                           "as fast as the stages take them.")] = False,
    no_console: Annotated[bool, typer.Option("--no-console", help="Do not serve the console.")] = False,
    exit_when_done: Annotated[bool, typer.Option("--exit", help="Stop the console when the run is over.")] = False,
) -> None:
    """The whole pipeline in one process: a scenario through detect, fuse and alerts to stand-in partners,
    the console on localhost, and a run report (map, scores, stage counts)."""
    from ibet.demo import run_demo

    cfg, registry = _load(config)
    try:
        run_demo(cfg, registry, scenario or None, seed, realtime=realtime, serve_console=not no_console,
                 hold_console=not exit_when_done)
    except IbetError as exc:
        _fail(str(exc))


@app.command("up")
def up_cmd(
    bootstrap: Annotated[str, typer.Option(help="host:port of the Kafka broker.")],
    config: ConfigOption = None,
    no_console: Annotated[bool, typer.Option("--no-console", help="Do not start the console.")] = False,
    scenario: Annotated[str, typer.Option(help="Also feed this shipped scenario's frames onto Kafka.")] = "",
    logs: Annotated[Path, typer.Option(help="Folder of the processes' logs.")] = Path("var/up"),
) -> None:
    """The pipeline as separate processes (one per stage, plus the console) on a real Kafka broker."""
    import subprocess
    import sys
    import time

    from ibet.up import Pipeline

    pipeline = Pipeline(bootstrap, config, console=not no_console, log_dir=logs)
    try:
        pipeline.start()
    except subprocess.CalledProcessError as exc:
        _fail(f"cannot create the topics on {bootstrap}: {exc.stderr.decode(errors='replace')[-500:]}")
    for child in pipeline.children:
        typer.echo(f"started {child.name} (pid {child.process.pid}), log {child.log_path}")
    if scenario:
        feed = [sys.executable, "-m", "ibet.cli", "sim", "run", scenario, "--to", "kafka",
                *(["--config", str(config)] if config else [])]
        subprocess.run(feed, env=pipeline.environment(), check=False)
    try:
        while not pipeline.dead():
            time.sleep(1.0)
        for child in pipeline.dead():
            typer.secho(f"{child.name} exited with {child.process.returncode}; see {child.log_path}", fg=typer.colors.RED)
    except KeyboardInterrupt:
        pass
    finally:
        codes = pipeline.stop()
        typer.echo("stopped: " + ", ".join(f"{name} {code}" for name, code in codes.items()))


@topics_app.command("create")
def topics_create(
    config: ConfigOption = None,
    partitions: Annotated[int | None, typer.Option(help="Partitions per topic (default: bus.kafka.default_partitions).")] = None,
) -> None:
    """Create every pipeline topic and its dead-letter topic on Kafka, sized for frames."""
    from ibet.bus.kafka import KafkaBus

    cfg, _ = _load(config)
    names = [spec.name for spec in topics.all_topic_specs()]
    created = KafkaBus(cfg.bus.kafka).create_topics(names, partitions)
    typer.echo(f"created {len(created)} topics ({len(names) - len(created)} existed) on "
               f"{','.join(cfg.bus.kafka.bootstrap_servers)}; max record {topics.MAX_RECORD_BYTES} bytes")


@topics_app.command("list")
def topics_list() -> None:
    """Show every topic with its key and value."""
    for spec in topics.all_topic_specs():
        typer.echo(f"{spec.name:28} key: {spec.key:10} value: {spec.value}")


@config_app.command("check")
def config_check(config: ConfigOption = None) -> None:
    """Validate the configuration, the registry, the ports of entry and the border; exit 2 naming what is bad."""
    from ibet.border import load_border, load_ports_of_entry

    cfg, registry = _load(config)
    try:
        border = load_border()
        ports = load_ports_of_entry(cfg.ports_of_entry_file(), sector_ids={s.id for s in registry.sectors}, border=border)
    except IbetError as exc:
        _fail(str(exc))
    typer.echo(f"configuration OK (bus: {cfg.bus.kind}); registry {cfg.registry_file()}: {len(registry.sectors)} sectors, "
               f"{len(registry.sensors)} sensors, {len(registry.partners)} partners; {len(ports)} ports of entry; "
               f"border: {border.source}")


@contextmanager
def _bench_broker(bootstrap: str | None) -> Iterator[str]:
    """The given broker, or a local one started for the benchmark and stopped after it."""
    from ibet.testing.kafka_broker import LocalKafkaBroker

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
    from ibet.bench.bus import Case, run_bus_bench
    from ibet.bench.report import report
    from ibet.config import KafkaSettings

    cases = [Case("200KB", 200 * 1024, large), Case("1KB", 1024, small)]
    with _bench_broker(bootstrap) as servers:
        results = run_bus_bench(KafkaSettings(bootstrap_servers=[servers]), cases, rounds)
    rows = [[label, r["ours_msgs_per_s"], r["raw_msgs_per_s"], r["ours_mb_per_s"], r["raw_mb_per_s"], r["ratio"]]
            for label, r in results.items()]
    summary = {"bench": "bus", "baseline": "raw kafka-python, same settings", "ratio": min(r["ratio"] for r in results.values()),
               **{f"{label}_{k}": v for label, r in results.items() for k, v in r.items()}}
    report("bench-bus", "ibet bench bus (median of rounds)", ["payload", "ours msg/s", "raw msg/s", "ours MB/s",
           "raw MB/s", "ratio ours/raw"], rows, summary)


@app.command("eval")
def eval_cmd(
    scenario: Annotated[str, typer.Argument(help="Shipped scenario name or YAML file; 'all' for every shipped one.")],
    seeds: Annotated[str, typer.Option(help="Seeds, e.g. 1-5.")] = "1-3",
    config: ConfigOption = None,
) -> None:
    """Score SCENARIO through georeferencing, tracking and border rules against the simulator's truth."""
    from fuse.border_relation import BorderModel
    from fuse.evaluate import evaluate
    from ibet.bench.report import report
    from ibet.border import load_border, load_ports_of_entry
    from sim.cli import parse_seeds
    from sim.scenario import load_scenario, resolve_scenario, shipped_scenarios

    cfg, registry = _load(config)
    try:
        paths = shipped_scenarios() if scenario == "all" else [resolve_scenario(scenario)]
        scenarios = [load_scenario(p) for p in paths]
    except IbetError as exc:
        _fail(str(exc))
    model = BorderModel(load_border(), load_ports_of_entry(cfg.ports_of_entry_file()))
    results = [evaluate(sc, parse_seeds(seeds), registry, model, cfg.fuse) for sc in scenarios]
    columns = ["scenario", "recall", "precision", "FA/h", "lawful", "appr.", "latency s p50/95", "georef m p50/95",
               "id sw."]
    rows = [[r["scenario"], r["crossing_recall"], r["crossing_precision"], r["false_alarms_per_hour"],
             f"{r['lawful_crossing_events']}/{r['true_lawful_crossings']}", f"{r['approach_events']}/{r['true_approaches']}",
             f"{r['time_to_event_p50_s']}/{r['time_to_event_p95_s']}",
             f"{r['georef_error_median_m']}/{r['georef_error_p95_m']}", r["identity_switches"]] for r in results]
    name = "all" if scenario == "all" else scenarios[0].name
    summary = results[0] if len(results) == 1 else {"scenario": "all", "results": results}
    report(f"eval-{name}", f"ibet eval {scenario} (seeds {seeds})", columns, rows, summary)


@bench_app.command("ingest")
def bench_ingest(
    bootstrap: Annotated[str | None, typer.Option(help="host:port of a broker; default: start a local one.")] = None,
    frames: Annotated[int, typer.Option(help="Frames per round.")] = 200,
    clients: Annotated[int, typer.Option(help="Concurrent drones (client threads).")] = 4,
    rounds: Annotated[int, typer.Option(help="Rounds per side, alternating API and raw.")] = 3,
) -> None:
    """Push-API frames/s and MB/s against raw kafka-python producing the same frames; HTTP overhead."""
    from ibet.bench.ingest import run_ingest_bench
    from ibet.bench.report import report
    from ibet.config import KafkaSettings

    with _bench_broker(bootstrap) as servers:
        r = run_ingest_bench(KafkaSettings(bootstrap_servers=[servers]), frames, clients, rounds)
    rows = [["push API", r["api_frames_per_s"], r["api_mb_per_s"], r["api_mean_latency_ms"]],
            ["raw kafka-python", r["raw_frames_per_s"], r["raw_mb_per_s"], r["raw_mean_latency_ms"]]]
    report("bench-ingest", f"ibet bench ingest ({clients} clients, {frames} frames/round, ratio {r['ratio']})",
           ["path", "frames/s", "MB/s", "mean latency ms"], rows,
           {"bench": "ingest", "baseline": "raw kafka-python send().get(), same frames and headers", **r})


def _bench_fuse(
    targets: Annotated[str, typer.Option(help="Comma-separated numbers of simultaneous targets.")] = "10,100,500",
    scans: Annotated[int, typer.Option(help="Scans at 2 Hz (the largest case runs fewer).")] = 60,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic scene.")] = 0,
) -> None:
    """Georeference + track + border against Stone Soup (GNN + Kalman) on the same measurements."""
    from ibet.bench.fuse import bench_fuse_command

    bench_fuse_command(targets, scans, seed)


bench_app.command("fuse")(_bench_fuse)


@bench_app.command("alerts")
def bench_alerts(
    rates: Annotated[str, typer.Option(help="Comma-separated event rates (events/s).")] = "10,100,1000",
    seconds: Annotated[float, typer.Option(help="Seconds of events at each rate.")] = 3.0,
) -> None:
    """Event -> webhook delivered latency p50/p99 through the alert service vs a bare HTTP POST."""
    from ibet.bench.alerts import run_alerts_bench
    from ibet.bench.report import report

    results = run_alerts_bench([float(r) for r in rates.split(",") if r], seconds)
    columns = ["events/s", "pipeline p50 ms", "pipeline p99 ms", "bare POST p50 ms", "bare POST p99 ms",
               "ratio p50", "ratio p99", "delivered (pipeline)", "delivered (bare)"]
    rows = [[r["events_per_s"], r["pipeline_p50_ms"], r["pipeline_p99_ms"], r["bare_post_p50_ms"], r["bare_post_p99_ms"],
             r["ratio_p50"], r["ratio_p99"], r["pipeline_delivered"], r["bare_delivered"]] for r in results]
    report("bench-alerts", f"ibet bench alerts ({seconds:g} s per rate)", columns, rows,
           {"bench": "alerts", "baseline": "bare httpx POST of the same signed webhook body, same process",
            "results": results})


def main() -> None:  # pragma: no cover - console-script shim
    app()


def _mount_sub_apps() -> None:
    """Command groups that live with their packages."""
    from alerts.cli_tokens import tokens_app
    from console.cli import console_app, users_app
    from models.cli import models_app

    alerts_app = typer.Typer(help="The alert service: partner contacts' API tokens.", no_args_is_help=True)
    alerts_app.add_typer(tokens_app, name="tokens")
    app.add_typer(alerts_app, name="alerts")
    app.add_typer(console_app, name="console")
    app.add_typer(users_app, name="users")
    app.add_typer(models_app, name="models")
    from ibet.bench.detect import bench_detect_command
    from ibet.dlq_replay import dlq_app

    app.add_typer(dlq_app, name="dlq")

    bench_app.command("detect")(bench_detect_command)
    from ibet.bench.scale import bench_scale_command

    bench_app.command("scale")(bench_scale_command)
    from ibet.bench.e2e import bench_e2e_command

    bench_app.command("e2e")(bench_e2e_command)


_mount_sub_apps()

db_app = typer.Typer(help="The database: schema migrations.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("migrate")
def db_migrate(config: ConfigOption = None,
               revision: Annotated[str, typer.Option(help="Alembic revision.")] = "head") -> None:
    """Bring the database schema up to REVISION (Alembic upgrade); safe to run again."""
    from ibet.db import make_engine, migrate

    cfg, _ = _load(config)
    try:
        engine = make_engine(cfg.database)
    except IbetError as exc:
        _fail(str(exc))
    try:
        migrate(engine, revision)
    finally:
        engine.dispose()
    typer.echo(f"database {engine.url.render_as_string(hide_password=True)} at {revision}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
