"""``ibet ingest serve|pull|stream`` and ``ibet sensors enroll|rotate|revoke``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ibet.cli_support import ConfigOption
from ibet.cli_support import fail as _fail
from ibet.cli_support import load_config_and_registry as _load

ingest_app = typer.Typer(help="Frames into Kafka: the drone push API, pulled camera sources and video streams.", no_args_is_help=True)
sensors_app = typer.Typer(help="Sensors: add one to the registry; drone credentials: issue, rotate and revoke push tokens.", no_args_is_help=True)

SensorArg = Annotated[str, typer.Argument(help="Sensor id from the registry.")]


@ingest_app.command("serve")
def serve_cmd(config: ConfigOption = None) -> None:
    """Serve the drone push API (HTTP, or HTTPS with ingest.tls_*) producing to ibet.frames.v1."""
    from ingest.push_api import run_push_server

    cfg, registry = _load(config)
    run_push_server(cfg, registry)


@ingest_app.command("pull")
def pull_cmd(
    sensor: Annotated[str, typer.Option("--sensor", help="Fixed camera to pull (its source_url in the registry).")],
    config: ConfigOption = None,
    source: Annotated[str | None, typer.Option(help="Override the source: a video file, image folder or stream URL.")]
    = None,
    start_ts_ns: Annotated[int | None, typer.Option(help="Capture time of a file's first frame (ns since epoch).")]
    = None,
    max_frames: Annotated[int | None, typer.Option(help="Stop after this many frames.")] = None,
) -> None:
    """Pull one camera (file, image folder, RTSP or HTTP MJPEG) at its detection rate into Kafka."""
    from ibet.exceptions import IbetError
    from ingest.pull import run_pull

    cfg, registry = _load(config)
    try:
        stats = run_pull(cfg, registry, sensor, source, start_ts_ns, max_frames)
    except IbetError as exc:
        _fail(str(exc))
    typer.echo(str(stats))


@ingest_app.command("stream")
def stream_cmd(
    sensor: Annotated[str, typer.Option("--sensor", help="Drone or camera in the registry.")],
    source: Annotated[str | None, typer.Option(
        help="udp://host:port (multicast joined), srt://host:port (?mode=listener|caller&passphrase=...), "
             "rtsp://, rtmp://, or a .ts/.mp4 file; default: the sensor's source_url.")] = None,
    config: ConfigOption = None,
    max_frames: Annotated[int | None, typer.Option(help="Stop after producing this many frames.")] = None,
    max_reconnects: Annotated[int | None, typer.Option(help="Give up a live source after this many reconnects.")]
    = None,
    klv_source: Annotated[str | None, typer.Option(
        help="udp://host:port of a KLV side stream (ST 0601 / EG 0104 packets in datagrams), for video without "
             "embedded KLV; paired by tag 2.")] = None,
    telemetry_source: Annotated[str | None, typer.Option(
        help="mqtt[s]://[user:pass@]host:port/topic of JSON telemetry in ST 0601 names with precision_ts_us "
             "(a DJI dock's bridge, a GCS), for video without KLV (RTMP/RTSP).")] = None,
) -> None:
    """Decode a video stream or file (STANAG 4609 with MISB KLV, or plain video) into Kafka at the sensor's rate."""
    from ibet.exceptions import IbetError
    from ingest.stream import run_stream

    cfg, registry = _load(config)
    try:
        stats = run_stream(cfg, registry, sensor, source, max_frames, max_reconnects=max_reconnects,
                           klv_source=klv_source, telemetry_source=telemetry_source)
    except IbetError as exc:
        _fail(str(exc))
    typer.echo(str(stats))


def _credential(action: str, sensor: str, config: Path | None) -> None:
    from ibet.exceptions import IbetError
    from ingest import credentials

    cfg, _ = _load(config)
    try:
        token = getattr(credentials, action)(cfg.registry_file(), sensor)
    except IbetError as exc:
        _fail(str(exc))
    if token:
        typer.echo(f"{action}ed {sensor}; its push token (shown once, store it on the drone):\n{token}")
    else:
        typer.echo(f"revoked {sensor}: it can no longer push")


@sensors_app.command("enroll")
def enroll_cmd(sensor: SensorArg, config: ConfigOption = None) -> None:
    """Issue a push token for a drone; only its hash is stored in the registry."""
    _credential("enroll", sensor, config)


@sensors_app.command("rotate")
def rotate_cmd(sensor: SensorArg, config: ConfigOption = None) -> None:
    """Replace a drone's token; the old one stops working."""
    _credential("rotate", sensor, config)


@sensors_app.command("revoke")
def revoke_cmd(sensor: SensorArg, config: ConfigOption = None) -> None:
    """Remove a drone's credential: it can no longer push."""
    _credential("revoke", sensor, config)
