"""``ibet alerts tokens issue|revoke|list``: API tokens of partner contacts (mounted by ``ibet_app.cli``).

A token is printed once, at issue; the database keeps only its SHA-256. The contact's roster level
(1 and above may reopen resolved alerts) is read from the duty rosters unless ``--level`` is given,
so a contact id that is in no roster entry of the partner is refused (usually a typo).
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer

from ibet.cli_support import ConfigOption, load_config_and_registry
from ibet.cli_support import fail as _fail

tokens_app = typer.Typer(help="API tokens of partner contacts: issue, revoke, list.", no_args_is_help=True)

def _open(config: Path | None):
    """Config, registry and a migrated engine; a bad config stops with what to fix."""
    from ibet.db import make_engine, migrate

    cfg, registry = load_config_and_registry(config)
    engine = make_engine(cfg.database)
    migrate(engine)
    return cfg, registry, engine


def _operator():
    from ibet.audit import Actor

    return Actor("system", f"cli:{getpass.getuser()}")


@tokens_app.command("issue")
def issue_cmd(
    partner: Annotated[str, typer.Argument(help="Partner id from the registry, e.g. usbp.")],
    contact: Annotated[str, typer.Argument(help="Contact id as in the duty rosters.")],
    level: Annotated[int | None, typer.Option(min=0, help="Roster level (default: read from the rosters).")] = None,
    ttl_days: Annotated[float | None, typer.Option(min=0.001, help="Expire after this many days (default: never).")]
    = None,
    note: Annotated[str, typer.Option(help="What the token is for (kept with it).")] = "",
    config: ConfigOption = None,
) -> None:
    """Issue a token for a contact and print it once."""
    from alerts.identity import ContactTokens, roster_level
    from alerts.rosters import load_rosters
    from ibet.exceptions import IbetError

    cfg, registry, engine = _open(config)
    try:
        if partner not in {p.id for p in registry.partners}:
            _fail(f"unknown partner {partner!r}; the registry has {', '.join(p.id for p in registry.partners)}")
        if level is None:
            level = roster_level(load_rosters(cfg.rosters_file(), registry), partner, contact)
            if level is None:
                _fail(f"contact {contact!r} of {partner} is in no entry of {cfg.rosters_file()}; "
                      "check the id, or give --level to issue anyway")
        issued = ContactTokens(engine).issue(partner, contact, level=level, note=note, actor=_operator(),
                                             ttl_s=None if ttl_days is None else ttl_days * 86_400.0)
    except (IbetError, ValueError) as exc:
        _fail(str(exc))
    finally:
        engine.dispose()
    typer.echo(f"issued token {issued.info.token_id} for {partner}/{contact} (level {level}); "
               f"shown once, give it to the contact:\n{issued.token}")


@tokens_app.command("revoke")
def revoke_cmd(token_id: Annotated[str, typer.Argument(help="Token id (from `tokens list`).")],
               config: ConfigOption = None) -> None:
    """Revoke a token: it stops working at once."""
    from alerts.identity import ContactTokens
    from ibet.exceptions import IbetError

    _, _, engine = _open(config)
    try:
        info = ContactTokens(engine).revoke(token_id, actor=_operator())
    except IbetError as exc:
        _fail(str(exc))
    finally:
        engine.dispose()
    typer.echo(f"revoked token {info.token_id} of {info.partner_id}/{info.contact_id}")


@tokens_app.command("list")
def list_cmd(
    partner: Annotated[str | None, typer.Option(help="Only this partner's tokens.")] = None,
    contact: Annotated[str | None, typer.Option(help="Only this contact's tokens.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Include revoked tokens.")] = False,
    config: ConfigOption = None,
) -> None:
    """List tokens (never the tokens themselves): id, partner/contact, level, created, expires, revoked."""
    from alerts.identity import ContactTokens
    from ibet.clock import ns_to_datetime_utc

    _, _, engine = _open(config)
    try:
        infos = ContactTokens(engine).list(partner, contact, include_revoked=all_)
    finally:
        engine.dispose()

    def when(ns: int | None) -> str:
        return "-" if ns is None else ns_to_datetime_utc(ns).isoformat(timespec="seconds")

    for info in infos:
        typer.echo(f"{info.token_id}  {info.partner_id}/{info.contact_id}  level {info.level}  created {when(info.created_ns)}"
                   f"  expires {when(info.expires_ns)}  revoked {when(info.revoked_ns)}  {info.note}")
    if not infos:
        typer.echo("no tokens")
