"""The ``ibet`` command line: the application shell's one entry point.

It mounts each stage's own commands (``ibet ingest``, ``ibet console``, ``ibet alerts tokens``,
``ibet models``, ``ibet sim``) and adds what composes several stages: ``ibet run``, ``ibet demo``,
``ibet up``, ``ibet eval``, ``ibet bench``, ``ibet dlq``, ``ibet topics``, ``ibet config``, ``ibet db``.
"""

from __future__ import annotations

import platform
import sys
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated

import typer

from alerts.cli_tokens import tokens_app
from console.cli import console_app, users_app
from ibet import __version__, topics
from ibet.cli_support import ConfigOption
from ibet.cli_support import fail as _fail
from ibet.cli_support import load_config_and_registry as _load
from ibet.exceptions import IbetError
from ibet_app.admin_cli import sector_app, sensors_add, sim_new
from ibet_app.bench.cli import bench_app
from ibet_app.dlq_replay import dlq_app
from ingest.cli import ingest_app, sensors_app
from models.cli import models_app
from sim.cli import sim_app

app = typer.Typer(help="ibet: sensor fusion for Integrated Border Enforcement Teams.", no_args_is_help=True)
topics_app = typer.Typer(help="Kafka topics of the pipeline.", no_args_is_help=True)
config_app = typer.Typer(help="Configuration and registry.", no_args_is_help=True)
alerts_app = typer.Typer(help="The alert service: partner contacts' API tokens.", no_args_is_help=True)
db_app = typer.Typer(help="The database: schema migrations.", no_args_is_help=True)
border_app = typer.Typer(help="The border line crossings are decided on: import an agency's.", no_args_is_help=True)
alerts_app.add_typer(tokens_app, name="tokens")
for sub_app, name in ((topics_app, "topics"), (bench_app, "bench"), (config_app, "config"), (sim_app, "sim"),
                      (ingest_app, "ingest"), (sensors_app, "sensors"), (alerts_app, "alerts"),
                      (console_app, "console"), (users_app, "users"), (models_app, "models"), (dlq_app, "dlq"),
                      (db_app, "db"), (sector_app, "sector"), (border_app, "border")):
    app.add_typer(sub_app, name=name)
sensors_app.command("add")(sensors_add)  # the registry's side of sensors; ingest's side is their credentials
sim_app.command("new")(sim_new)


@border_app.command("import")
def border_import(
    file: Annotated[Path, typer.Argument(help="The agency's boundary: Shapefile, GeoPackage or GeoJSON lines, any CRS.")],
    version: Annotated[str | None, typer.Option(help="Its version (default: the file's 'version' property).")] = None,
    accuracy_m: Annotated[float | None, typer.Option(help="Its horizontal accuracy in metres (default: the file's "
                                                          "'accuracy_m', the worst of its features).")] = None,
    config: ConfigOption = None,
) -> None:
    """Check an agency's border line (overlaps, gaps, CRS, geometry) and make it the line ibet decides on."""
    from ibet_app.border_import import import_border

    config_file = config or Path("config/ibet.yaml")
    try:
        done = import_border(file, config_file, version=version, accuracy_m=accuracy_m)
    except IbetError as exc:
        _fail(str(exc))
    typer.echo(f"border line {done.version} (accuracy {done.accuracy_m:g} m, {done.pieces} pieces, "
               f"{done.length_km} km) written to {done.path}; border_path set in {config_file}")
    typer.echo(f"note: sides still come from the countries file; this line runs up to {done.off_shipped_max_m:.0f} m "
               "from the shipped line their shared edge follows")


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
    from ibet_app.stages import build_stage

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
    ingest: Annotated[str, typer.Option(help="'bus': the simulator's frames straight onto the bus; 'stream': "
                                        "each drone as a STANAG 4609 stream through ibet ingest stream.")] = "bus",
) -> None:
    """The whole pipeline in one process: a scenario through detect, fuse and alerts to stand-in partners,
    the console on localhost, and a run report (map, scores, stage counts)."""
    from ibet_app.demo import run_demo

    if ingest not in ("bus", "stream"):
        _fail(f"--ingest must be 'bus' or 'stream', not '{ingest}'")
    cfg, registry = _load(config)
    try:
        run_demo(cfg, registry, scenario or None, seed, realtime=realtime, serve_console=not no_console,
                 hold_console=not exit_when_done, ingest=ingest)
    except IbetError as exc:
        _fail(str(exc))


@app.command("up")
def up_cmd(
    bootstrap: Annotated[str, typer.Option(help="host:port of the Kafka broker.")],
    config: ConfigOption = None,
    no_console: Annotated[bool, typer.Option("--no-console", help="Do not start the console.")] = False,
    no_push_api: Annotated[bool, typer.Option("--no-push-api", help="Do not start the drones' push API.")] = False,
    scenario: Annotated[str, typer.Option(help="Also feed this shipped scenario's frames onto Kafka.")] = "",
    logs: Annotated[Path, typer.Option(help="Folder of the processes' logs.")] = Path("var/up"),
    stream: Annotated[list[str] | None, typer.Option(
        help="SENSOR or SENSOR=URL: also run `ibet ingest stream` for this drone or camera (its registry source_url, "
             "or URL: udp://, srt://...?passphrase=, rtsp://, rtmp://). Repeat for each stream.")] = None,
) -> None:
    """The pipeline as separate processes (one per stage, the console, the push API, each video stream) on a real
    Kafka broker."""
    import subprocess
    import sys
    import time

    from ibet_app.up import Pipeline

    _, registry = _load(config)
    streams = _stream_sources(stream or [], registry)
    pipeline = Pipeline(bootstrap, config, console=not no_console, push_api=not no_push_api, log_dir=logs,
                        streams=streams)
    try:
        pipeline.start()
    except subprocess.CalledProcessError as exc:
        _fail(f"cannot create the topics on {bootstrap}: {exc.stderr.decode(errors='replace')[-500:]}")
    for child in pipeline.children:
        typer.echo(f"started {child.name} (pid {child.process.pid}), log {child.log_path}")
    if scenario:
        feed = [sys.executable, "-m", "ibet_app.cli", "sim", "run", scenario, "--to", "kafka",
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


def _stream_sources(specs: list[str], registry) -> dict[str, str | None]:
    """``--stream SENSOR[=URL]`` options as sensor -> source; exits 2 on an unknown sensor or one with no source."""
    sensors = {s.id: s for s in registry.sensors}
    streams: dict[str, str | None] = {}
    for spec in specs:
        sensor, _, url = spec.partition("=")
        if sensor not in sensors:
            _fail(f"--stream {sensor}: unknown sensor (known: {', '.join(sorted(sensors)) or 'none'})")
        if sensor in streams:
            _fail(f"--stream {sensor}: given twice")
        if not url and sensors[sensor].source_url is None:
            _fail(f"--stream {sensor}: the sensor has no source_url in the registry; give one as {sensor}=URL")
        streams[sensor] = url or None
    return streams


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
def config_check(
    config: ConfigOption = None,
    allow_gaps: Annotated[bool, typer.Option(help="Report hours with no duty desk of a country, but do not fail.")]
    = False,
) -> None:
    """Validate the configuration, the registry, the ports of entry, the border and the rosters (and
    their coverage: every sector, both countries' duty desks, every hour of the coming week and of
    the weeks of the next daylight-saving changes); exit 2 naming what is bad."""
    from alerts.coverage import coverage_gaps, weeks_to_check
    from alerts.rosters import load_rosters
    from fuse.sector_dems import load_sector_dems
    from ibet.border import load_border, load_ports_of_entry

    cfg, registry = _load(config)
    try:
        border = load_border(cfg.border_path)
        ports = load_ports_of_entry(cfg.ports_of_entry_file(), sector_ids={s.id for s in registry.sectors}, border=border)
        roster = load_rosters(cfg.rosters_file(), registry)
        dems = load_sector_dems(registry, cfg.registry_file().parent)
    except IbetError as exc:
        _fail(str(exc))
    gaps = coverage_gaps(roster, registry, weeks_to_check(registry, datetime.now(UTC)))
    for gap in gaps:
        typer.echo(f"{'warning' if allow_gaps else 'error'}: rosters {cfg.rosters_file()}: {gap}", err=True)
    if gaps and not allow_gaps:
        _fail(f"{len(gaps)} span(s) in {len({g.sector_id for g in gaps})} sector(s) with no duty desk of a country "
              "(listed above); add shifts, or pass --allow-gaps")
    typer.echo(f"configuration OK (bus: {cfg.bus.kind}); registry {cfg.registry_file()}: {len(registry.sectors)} sectors, "
               f"{len(registry.sensors)} sensors, {len(registry.partners)} partners; {len(ports)} ports of entry; "
               f"border: {border.source}, version {border.version}, accuracy "
               f"{'unknown' if border.accuracy_m is None else f'{border.accuracy_m:g} m'}"
               f"{' (the demo line)' if border.shipped_demo else ''}; DEMs: {', '.join(sorted(dems)) or 'none (flat ground)'}; "
               f"rosters: {len(roster.entries())} entries, "
               + ("every sector covered by both countries' duty desks around the clock" if not gaps
                  else f"{len(gaps)} coverage gap(s)"))


@app.command("eval")
def eval_cmd(
    scenario: Annotated[str, typer.Argument(help="Shipped scenario name or YAML file; 'all' for every shipped one.")],
    seeds: Annotated[str, typer.Option(help="Seeds, e.g. 1-5.")] = "1-3",
    config: ConfigOption = None,
) -> None:
    """Score SCENARIO through georeferencing, tracking and border rules against the simulator's truth."""
    from fuse.border_relation import BorderModel
    from fuse.sector_dems import load_sector_dems
    from ibet.border import load_border, load_ports_of_entry
    from ibet_app.bench.report import report
    from ibet_app.evaluate import check_against_registry, evaluate
    from sim.cli import parse_seeds
    from sim.scenario import load_scenario, resolve_scenario, shipped_scenarios

    cfg, registry = _load(config)
    try:
        paths = shipped_scenarios() if scenario == "all" else [resolve_scenario(scenario)]
        scenarios = [load_scenario(p) for p in paths]
        for sc in scenarios:
            check_against_registry(sc, registry)
    except IbetError as exc:
        _fail(str(exc))
    model = BorderModel(load_border(cfg.border_path), load_ports_of_entry(cfg.ports_of_entry_file()))
    try:
        terrains = load_sector_dems(registry, cfg.registry_file().parent)  # as the fuse stage loads them
    except IbetError as exc:
        _fail(str(exc))
    results = [evaluate(sc, parse_seeds(seeds), registry, model, cfg.fuse, terrains=terrains) for sc in scenarios]
    columns = ["scenario", "recall", "precision", "FA/h", "lawful", "appr.", "latency s p50/95", "georef m p50/95",
               "id sw."]
    rows = [[r["scenario"], r["crossing_recall"], r["crossing_precision"], r["false_alarms_per_hour"],
             f"{r['lawful_crossing_events']}/{r['true_lawful_crossings']}", f"{r['approach_events']}/{r['true_approaches']}",
             f"{r['time_to_event_p50_s']}/{r['time_to_event_p95_s']}",
             f"{r['georef_error_median_m']}/{r['georef_error_p95_m']}", r["identity_switches"]] for r in results]
    name = "all" if scenario == "all" else scenarios[0].name
    summary = results[0] if len(results) == 1 else {"scenario": "all", "results": results}
    report(f"eval-{name}", f"ibet eval {scenario} (seeds {seeds})", columns, rows, summary)


def main() -> None:  # pragma: no cover - console-script shim
    app()


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
