"""``ibet console`` (serve the console; ``ibet console purge``) and ``ibet users create-admin|create``.

The application shell mounts these in :mod:`ibet_app.cli` as ``ibet console`` and ``ibet users``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ibet.cli_support import ConfigOption, load_config_and_registry
from ibet.cli_support import fail as _fail

console_app = typer.Typer(help="The operators' and analysts' web console.", invoke_without_command=True)
users_app = typer.Typer(help="Console accounts.", no_args_is_help=True)

def _setup(config: Path | None):
    """Configuration, registry, console settings and a migrated database engine."""
    from ibet.db import make_engine, migrate

    cfg, registry = load_config_and_registry(config)
    settings = cfg.console
    engine = make_engine(cfg.database)
    migrate(engine)
    return cfg, registry, settings, engine


def _publisher(cfg, registry, engine):
    """Each alert version an operator produces (acknowledged, escalated, resolved) is recorded in the
    alert outbox with a delivery to every routed partner (the alert service's workers send them) and,
    on Kafka, put on ibet.alerts.v1, exactly as the alert service does for its own API. With the
    in-memory bus there is no other process to tell: the outbox is what the alert service reads."""
    from alerts.outbox import Outbox
    from alerts.service import bus_publisher, version_recorder
    from ibet.bus import open_bus

    if cfg.bus.kind == "kafka":
        bus_publish = bus_publisher(open_bus(cfg.bus).producer("ibet-console"))
    else:
        def bus_publish(_alert) -> None:
            return None
    return version_recorder(Outbox(engine), registry, cfg.alerts.channels, bus_publish)


@console_app.callback()
def console_main(ctx: typer.Context, config: ConfigOption = None) -> None:
    """Serve the console (HTTP on console.host:console.port, /metrics on metrics.host:metrics.port) until
    SIGTERM/SIGINT."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = config
        return
    from console.app import serve
    from ibet.border import load_border, load_ports_of_entry
    from ibet.exceptions import IbetError
    from ibet.metrics import serve_metrics

    cfg, registry, settings, engine = _setup(config)
    try:
        border = load_border(cfg.border_path)
        ports = load_ports_of_entry(cfg.ports_of_entry_file(), sector_ids=[s.id for s in registry.sectors], border=border)
    except IbetError as exc:
        _fail(str(exc))
    publish = _publisher(cfg, registry, engine)
    serve_metrics(cfg.metrics)
    serve(settings, engine, cfg.http, registry=registry, border=border, ports=ports, publish=publish)


@console_app.command("purge")
def purge_cmd(ctx: typer.Context) -> None:
    """Purge detections, tracks and evidence past console.retention_days that no alert or case links (audited)."""
    from console.retention import purge
    from ibet.audit import SYSTEM
    from ibet.clock import SystemClock

    _, _, settings, engine = _setup(ctx.obj)
    result = purge(engine, settings.evidence_dir, settings.retention_days, SYSTEM, SystemClock().now_ns())
    typer.echo(f"purged {result['detections_purged']} detections, {result['tracks_purged']} tracks and "
               f"{result['evidence_files_removed']} evidence files (kept {result['detections_kept_linked']} detections "
               f"and {result['tracks_kept_linked']} tracks linked to alerts or cases)")


def _password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\n")
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


@users_app.command("create-admin")
def create_admin_cmd(
    username: Annotated[str, typer.Argument(help="Login name of the first administrator.")] = "admin",
    config: ConfigOption = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin.")] = False,
) -> None:
    """First start: create an administrator (who then manages users and partner accounts in the console)."""
    _create(username, "admin", None, config, password_stdin)


@users_app.command("create")
def create_cmd(
    username: Annotated[str, typer.Argument(help="Login name.")],
    role: Annotated[str, typer.Option(help="admin, operator, analyst or partner.")],
    partner: Annotated[str | None, typer.Option(help="Partner agency id (partner accounts).")] = None,
    config: ConfigOption = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin.")] = False,
) -> None:
    """Create a console user."""
    _create(username, role, partner, config, password_stdin)


def _create(username: str, role: str, partner: str | None, config: Path | None, password_stdin: bool) -> None:
    from console.accounts import Accounts
    from console.errors import AccountError
    from ibet.audit import SYSTEM, record_audit
    from ibet.clock import SystemClock

    _, registry, _, engine = _setup(config)
    accounts = Accounts(engine, SystemClock(), [p.id for p in registry.partners])
    try:
        user = accounts.create_user(username, _password(password_stdin), role, partner)
    except AccountError as exc:
        _fail(str(exc))
    record_audit(engine, actor=SYSTEM._replace(id="cli"), action="user.created", subject_kind="user", subject_id=user.user_id,
                 detail={"username": user.username, "role": user.role.value}, now_ns=SystemClock().now_ns())
    typer.echo(f"created {user.role.value} {user.username} ({user.user_id})")
