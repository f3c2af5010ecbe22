"""``ibet models list|verify|register``: the model registry from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

models_app = typer.Typer(help="Registered detector models: list, verify hashes, register a file.", no_args_is_help=True)

RegistryOption = Annotated[Path | None, typer.Option("--registry", help="Model registry YAML (default: models/registry.yaml).")]


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


def _registry(path: Path | None):
    from models.registry import DEFAULT_REGISTRY_PATH, ModelError, load_model_registry

    try:
        return load_model_registry(path or DEFAULT_REGISTRY_PATH)
    except ModelError as exc:
        _fail(str(exc))


@models_app.command("list")
def list_cmd(registry: RegistryOption = None) -> None:
    """Show every registered model: name, version, format, classes, file, key figures."""
    reg = _registry(registry)
    if not reg.models:
        typer.echo(f"{reg.path}: no models registered")
    for m in reg.models:
        figures = ", ".join(f"{k} {v}" for k, v in m.metrics.items() if isinstance(v, int | float))
        typer.echo(f"{m.ref:24} {m.format:8} input {m.input_size!s:6} classes {','.join(m.classes)}  {m.file}  "
                   f"sha256 {m.sha256[:12]}...  {figures}  ({m.licence})")


@models_app.command("verify")
def verify_cmd(
    name: Annotated[str | None, typer.Argument(help="Model name; default: every registered model.")] = None,
    version: Annotated[str | None, typer.Option(help="Version of NAME (default: the one registered last).")] = None,
    registry: RegistryOption = None,
) -> None:
    """Check each model file's SHA-256 against the registry; exit 2 naming any missing or changed file."""
    from models.registry import ModelError, verify

    reg = _registry(registry)
    try:
        entries = [reg.get(name, version)] if name else list(reg.models)
    except ModelError as exc:
        _fail(str(exc))
    problems = []
    for entry in entries:
        try:
            verify(entry)
            typer.echo(f"{entry.ref}: OK ({entry.path})")
        except ModelError as exc:
            problems.append(str(exc))
    if problems:
        _fail("\n".join(problems))


@models_app.command("register")
def register_cmd(
    path: Annotated[Path, typer.Argument(help="Model file (.pt, .onnx) or OpenVINO folder.")],
    name: Annotated[str, typer.Option(help="Model name.")],
    version: Annotated[str, typer.Option(help="Model version.")],
    classes: Annotated[str, typer.Option(help="Comma-separated class names in class-id order.")],
    source: Annotated[str, typer.Option(help="Where the weights come from.")],
    licence: Annotated[str, typer.Option(help="SPDX licence of the weights.")] = "AGPL-3.0-or-later",
    input_size: Annotated[str, typer.Option(help="'native' or pixels (multiple of 32).")] = "native",
    metrics: Annotated[Path | None, typer.Option(help="JSON file of measured figures (e.g. from evaluate).")] = None,
    registry: RegistryOption = None,
) -> None:
    """Hash PATH and add it to the registry as NAME:VERSION (replacing that version)."""
    from models.registry import DEFAULT_REGISTRY_PATH, ModelError, register

    try:
        figures = json.loads(metrics.read_text()) if metrics else {}
        size = input_size if input_size == "native" else int(input_size)
        entry = register(path, name, version, [c.strip() for c in classes.split(",") if c.strip()], input_size=size,
                         source=source, licence=licence, metrics=figures, registry_path=registry or DEFAULT_REGISTRY_PATH)
    except (ModelError, OSError, ValueError) as exc:
        _fail(str(exc))
    typer.echo(f"registered {entry.ref}: {entry.file} sha256 {entry.sha256}")
