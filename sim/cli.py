"""``ibet sim``: list, run, plot shipped or custom scenarios, and make training data from them."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Annotated

import typer

sim_app = typer.Typer(help="Scenario simulator: realistic sensor feeds with exact ground truth.", no_args_is_help=True)

ScenarioArg = Annotated[str, typer.Argument(help="A shipped scenario name (see 'ibet sim list') or a YAML file.")]
SeedOption = Annotated[int | None, typer.Option(help="Seed of this run (default: the scenario's own).")]


def parse_seeds(text: str) -> list[int]:
    """'1-4,9' -> [1, 2, 3, 4, 9]."""
    seeds: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        seeds += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
    return seeds


def _load(name_or_path: str):
    from ibet.exceptions import IbetError
    from sim.scenario import load_scenario, resolve_scenario

    try:
        return load_scenario(resolve_scenario(name_or_path))
    except IbetError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None


@sim_app.command("list")
def list_cmd() -> None:
    """The shipped scenarios, with what a perfect pipeline should raise for each."""
    from sim.scenario import load_scenario, shipped_scenarios

    for path in shipped_scenarios():
        sc = load_scenario(path)
        exp = sc.expected
        typer.echo(f"{sc.name:32} sector {sc.sector_id:20} crossings {exp.crossings} lawful {exp.lawful_crossings} "
                   f"approaches {exp.approaches} alerts {'yes' if exp.alerts else 'no'}\n    {sc.description.strip()}")


@sim_app.command("run")
def run_cmd(
    scenario: ScenarioArg,
    to: Annotated[str, typer.Option(help="'dir': frames, KLV and truth into --out; 'kafka': frames onto "
                                    "ibet.frames.v1; 'http': drones push to the ingest API at --url; a .ts file, "
                                    "udp://host:port or srt://host:port: one drone's STANAG 4609 stream.")] = "dir",
    out: Annotated[Path | None, typer.Option(help="Output folder (default runs/<scenario>-s<seed>).")] = None,
    seed: SeedOption = None,
    realtime: Annotated[bool, typer.Option(help="Send frames at the pace they were captured.")] = False,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Config with bus.kind kafka for --to kafka.")] = None,
    url: Annotated[str, typer.Option(help="Push API base URL for --to http.")] = "http://127.0.0.1:8080",
    tokens: Annotated[Path | None, typer.Option(help="YAML file 'sensor_id: token' of the drones, for --to http.")] = None,
    drone: Annotated[str | None, typer.Option(help="The drone streamed by --to FILE.ts / udp:// (default: the first).")]
    = None,
    speed: Annotated[float, typer.Option(help="With --realtime: this many times faster than captured.")] = 1.0,
    klv: Annotated[str, typer.Option(help="KLV of a STANAG 4609 stream: 'sync' (each packet with its frame's PTS) "
                                     "or 'async' (no PTS: paired by tag 2).")] = "sync",
) -> None:
    """Run SCENARIO once: every sensor's frames with telemetry, and the exact truth."""
    from rich.progress import Progress

    from sim.run import simulate
    from sim.sinks import BusSink, DirSink

    sc = _load(scenario)
    sim = simulate(sc, seed)
    folder = out or Path("runs") / f"{sc.name}-s{sim.seed}"
    if to == "dir":
        sink = DirSink(folder)
    elif to == "kafka":
        from ibet.bus.kafka import KafkaBus
        from ibet.config import load_config

        cfg = load_config(config)
        sink = BusSink(KafkaBus(cfg.bus.kafka).producer("ibet-sim"), realtime, truth_dir=folder / "truth")
    elif to == "http":
        import yaml

        from sim.sinks import HttpSink

        sink = HttpSink(url, yaml.safe_load(tokens.read_text()) if tokens else {}, realtime)
    elif to.lower().startswith(("udp://", "srt://")) or to.lower().endswith(".ts"):
        from sim.stanag_sink import StanagSink

        if klv not in ("sync", "async"):
            typer.secho(f"error: --klv must be 'sync' or 'async', not '{klv}'", err=True)
            raise typer.Exit(2)
        drones = [s for s in sc.sensors if s.kind == "drone" and (drone is None or s.id == drone)]
        if not drones:
            typer.secho(f"error: scenario {sc.name} has no drone {drone or ''} to stream", err=True)
            raise typer.Exit(2)
        sink = StanagSink(to, drones[0].id, realtime=realtime or to.lower().startswith(("udp://", "srt://")), speed=speed,
                          frame_rate_hz=drones[0].frame_rate_hz, klv=klv)
    else:
        typer.secho(f"error: --to must be 'dir', 'kafka', 'http', a .ts file or udp://host:port, not '{to}'", err=True)
        raise typer.Exit(2)
    sizes: dict[str, list[float]] = defaultdict(list)
    only = frozenset({sink.drone_id}) if hasattr(sink, "drone_id") else None
    expected = sum(int(sc.duration_s * s.frame_rate_hz) for s in sc.sensors if only is None or s.id in only)
    with Progress() as progress:
        task = progress.add_task(f"{sc.name} seed {sim.seed}", total=expected)
        for frame in sim.frames(sensors=only):
            sink.write(frame)
            for box in frame.truth_boxes:
                if box.visible_fraction >= 0.5:
                    x1, y1, x2, y2 = box.xyxy_px
                    sizes[box.kind].append(min(x2 - x1, y2 - y1))
            progress.advance(task)
    sink.close(sim)
    if hasattr(sink, "drone_id"):
        typer.echo(f"STANAG 4609 stream of {sink.drone_id or 'no drone'} to {to}; other sensors' frames skipped: "
                   f"{sink.skipped}")
        from sim.sinks import write_truth

        write_truth(sim, folder / "truth")
    if to == "http":
        typer.echo(f"fixed-camera frames skipped (ingest pulls those): {sink.skipped}; rejected: {len(sink.rejected)}")
        for sensor, sequence, status, text in sink.rejected[:5]:
            typer.echo(f"  {sensor} #{sequence}: HTTP {status} {text}")
        from sim.sinks import write_truth

        write_truth(sim, folder / "truth")
    typer.echo(f"{sink.count} frames sent, dropped per sensor {sim.dropped or 'none'}; truth in {folder / 'truth'}")
    for event in sim.events:
        typer.echo(f"  truth: {event.kind} of target {event.target_id} ({event.target_kind}) at t={event.time_s:.2f}s "
                   f"{event.direction} ({event.lat_deg:.6f}, {event.lon_deg:.6f}) port={event.port_of_entry_id}")
    for kind, values in sorted(sizes.items()):
        values.sort()
        typer.echo(f"  {kind} boxes (smaller side, px): min {values[0]:.1f}, median {values[len(values) // 2]:.1f}, "
                   f"max {values[-1]:.1f} over {len(values)} boxes")


@sim_app.command("plot")
def plot_cmd(
    scenario: ScenarioArg,
    seed: SeedOption = None,
    out: Annotated[Path | None, typer.Option(help="PNG file (default reports/sim-<scenario>.png).")] = None,
    frames: Annotated[bool, typer.Option(help="Also write a sheet of sample frames with truth boxes.")] = False,
) -> None:
    """Draw SCENARIO (border, ports, sensor footprints, target paths, true events) as a PNG."""
    from sim.plot import plot_scenario, sample_frames_sheet
    from sim.run import simulate

    sc = _load(scenario)
    sim = simulate(sc, seed)
    path = plot_scenario(sim, out or Path("reports") / f"sim-{sc.name}.png")
    typer.echo(f"wrote {path}")
    if frames:
        typer.echo(f"wrote {sample_frames_sheet(sim, path.with_name(path.stem + '-frames.png'))}")


@sim_app.command("dataset")
def dataset_cmd(
    out: Annotated[Path, typer.Option(help="Output folder (YOLO layout with data.yaml).")] = Path("datasets/ibet-sim"),
    scenarios: Annotated[str, typer.Option(help="Comma-separated scenario names or files; default all shipped.")] = "",
    train_seeds: Annotated[str, typer.Option(help="Seeds for training, e.g. 1-8.")] = "1-8",
    val_seeds: Annotated[str, typer.Option(help="Seeds for validation, disjoint from training.")] = "101-102",
    every_nth: Annotated[int, typer.Option(help="Keep every n-th frame.")] = 2,
    crop_px: Annotated[int, typer.Option(help="Cut native-scale square windows of this size around targets (0: whole frames).")] = 0,
) -> None:
    """Write a YOLO-format dataset (person, vehicle, boat) with exact boxes, split by seed."""
    from sim.dataset import write_dataset
    from sim.scenario import shipped_scenarios

    names = [s for s in scenarios.split(",") if s] or [str(p) for p in shipped_scenarios()]
    try:
        stats = write_dataset([_load(n) for n in names], parse_seeds(train_seeds), parse_seeds(val_seeds), out, every_nth,
                              crop_px=crop_px or None)
    except ValueError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    typer.echo(f"wrote {out}: images {stats.images}, boxes {stats.boxes}")
