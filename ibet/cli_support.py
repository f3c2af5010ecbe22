"""What every command of the ``ibet`` CLI shares: the ``--config`` option, loading the configuration
and registry, and stopping with a clear message. Stage CLIs (``ingest/cli.py``, ``console/cli.py``,
``alerts/cli_tokens.py``) take these from here, never from the application shell that mounts them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, NoReturn

import typer

from ibet.config import IbetConfig, load_config
from ibet.exceptions import IbetError
from ibet.registry import Registry, load_registry

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML config file (default: $IBET_CONFIG or config/ibet.yaml if present)."),
]

# Loggers that write a line per request or per migration step: quiet below WARNING.
_CHATTY_LOGGERS = ("alembic", "mail.log", "httpx", "uvicorn.access", "kafka")


def fail(message: str) -> NoReturn:
    """Print ``error: message`` in red on stderr and exit with status 2."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def load_config_and_registry(config_path: Path | None) -> tuple[IbetConfig, Registry]:
    """Configuration and registry, validated; a bad one stops the program naming what to fix."""
    try:
        config = load_config(config_path)
        registry = load_registry(config.registry_file())
    except IbetError as exc:
        fail(str(exc))
    logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for chatty in _CHATTY_LOGGERS:
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLevelName(config.log_level)))
    return config, registry
