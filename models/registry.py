"""The model registry: which detector files ibet may load, with their hashes, classes and figures.

``models/registry.yaml`` lists each model (name, version, file, sha256, input size, classes,
source, metrics, licence). A stage loads a model only through :func:`verify`, so a missing or
tampered file stops it at start-up with a message naming the file and both hashes::

    models/ibet-demo-det.pt: sha256 is 9f2c...; the registry expects 41ab... (tampered or replaced?)

Any Ultralytics-loadable model can be registered: a PyTorch ``.pt``, an ONNX file or an OpenVINO
export folder (hashed over its files, see :func:`model_sha256`).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from ibet.exceptions import IbetError
from ibet.registry import UniqueKeyLoader, format_validation_error

DEFAULT_REGISTRY_PATH = Path(__file__).resolve().parent / "registry.yaml"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_HEADER = ("# Models ibet may load: each file's sha256 is checked before loading (ibet models verify).\n"
           "# Written by `ibet models register`; see models/registry.py for the fields.\n")


class ModelError(IbetError):
    """A model that cannot be used: not registered, missing, tampered, or not what the registry says."""


class ModelEntry(BaseModel):
    """One registered model file."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str = Field(pattern=NAME_PATTERN, description="model name, e.g. 'ibet-demo-det'")
    version: str = Field(pattern=NAME_PATTERN, description="version of this name, e.g. '1'")
    file: str = Field(min_length=1, description="path of the .pt/.onnx file or OpenVINO folder, relative to the registry")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="hex SHA-256 of the file (see model_sha256)")
    format: Literal["pytorch", "onnx", "openvino"] = Field(description="how Ultralytics loads it")
    task: Literal["detect"] = "detect"
    input_size: Literal["native"] | int = Field(
        "native", description="'native': frames run at their own size (longer side rounded up to 32 px); "
        "a number: frames are letterboxed to that many pixels on their longer side")
    classes: tuple[str, ...] = Field(min_length=1, description="class names in the model's class-id order")
    source: str = Field(min_length=1, description="where the weights come from (training script, upstream release)")
    licence: str = Field(min_length=1, description="SPDX licence of the weights, e.g. AGPL-3.0-or-later")
    metrics: dict[str, Any] = Field(default_factory=dict, description="measured figures, e.g. mAP50 on a held-out set")

    _base_dir: Path = PrivateAttr(default=Path("."))

    @field_validator("input_size")
    @classmethod
    def _multiple_of_32(cls, value: Literal["native"] | int) -> Literal["native"] | int:
        if isinstance(value, int) and (value <= 0 or value % 32):
            raise ValueError(f"must be 'native' or a positive multiple of 32 pixels, got {value}")
        return value

    @field_validator("classes")
    @classmethod
    def _distinct(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value) or not all(value):
            raise ValueError(f"class names must be distinct and non-empty, got {list(value)}")
        return value

    @property
    def path(self) -> Path:
        """Where the model file is: ``file`` resolved against the registry's folder."""
        return self._base_dir / self.file

    @property
    def ref(self) -> str:
        """``name:version``, as logs and messages name the model."""
        return f"{self.name}:{self.version}"


class ModelRegistry(BaseModel):
    """Every registered model; (name, version) pairs are unique."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    models: tuple[ModelEntry, ...] = ()
    _path: Path = PrivateAttr(default=DEFAULT_REGISTRY_PATH)

    @model_validator(mode="after")
    def _unique(self) -> ModelRegistry:
        seen: set[tuple[str, str]] = set()
        for entry in self.models:
            if (entry.name, entry.version) in seen:
                raise ValueError(f"model {entry.ref} is registered twice")
            seen.add((entry.name, entry.version))
        return self

    @property
    def path(self) -> Path:
        return self._path

    def get(self, name: str, version: str | None = None) -> ModelEntry:
        """The entry ``name`` (at ``version``, or the one registered last); ModelError if there is none."""
        matches = [m for m in self.models if m.name == name and (version is None or m.version == version)]
        if not matches:
            known = ", ".join(m.ref for m in self.models) or "none"
            wanted = f"{name}:{version}" if version else name
            raise ModelError(f"{self.path}: no model {wanted} is registered (registered: {known}); "
                             f"add it with `ibet models register FILE --name {name} ...`")
        return matches[-1]


def load_model_registry(path: str | Path = DEFAULT_REGISTRY_PATH) -> ModelRegistry:
    """Read and validate the registry YAML at ``path``; ModelError names the file and the bad field.

    A file that does not exist is an empty registry (nothing registered yet).
    """
    path = Path(path)
    if not path.exists():
        registry = ModelRegistry()
        registry._path = path
        return registry
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ModelError(f"{path}: cannot read the model registry: {exc}") from None
    data = {"models": []} if data is None else data
    if not isinstance(data, dict):
        raise ModelError(f"{path}: the top level must be a mapping with the key 'models'")
    try:
        registry = ModelRegistry.model_validate(data)
    except ValidationError as exc:
        raise ModelError(format_validation_error(exc, data, str(path))) from None
    registry._path = path
    for entry in registry.models:
        entry._base_dir = path.parent
    return registry


def model_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a model file, or of a model folder (OpenVINO): over its files in sorted
    order, each as its relative path, a NUL byte, its own SHA-256, a newline."""
    path = Path(path)
    if path.is_dir():
        digest = hashlib.sha256()
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(f"{file.relative_to(path).as_posix()}\0{_file_sha256(file)}\n".encode())
        return digest.hexdigest()
    return _file_sha256(path)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(entry: ModelEntry) -> Path:
    """The path of ``entry``'s file after checking its SHA-256; ModelError names the file and the
    expected and actual hashes (or says the file is missing)."""
    path = entry.path
    if not path.exists():
        raise ModelError(f"model {entry.ref}: {path} does not exist (the registry expects sha256 {entry.sha256}); "
                         "publish or restore the file, or register the model again")
    actual = model_sha256(path)
    if actual != entry.sha256:
        raise ModelError(f"model {entry.ref}: {path} has sha256 {actual}, the registry expects {entry.sha256} "
                         "(the file was changed or replaced; restore it, or register it again if that was intended)")
    return path


def _format_of(path: Path) -> Literal["pytorch", "onnx", "openvino"]:
    if path.is_dir() and any(path.glob("*.xml")):
        return "openvino"
    if path.suffix == ".pt":
        return "pytorch"
    if path.suffix == ".onnx":
        return "onnx"
    raise ModelError(f"{path}: not a model ibet can load (a .pt file, an .onnx file or an OpenVINO folder with an .xml)")


def register(path: str | Path, name: str, version: str, classes: Sequence[str], *, input_size: Literal["native"] | int
             = "native", source: str, licence: str, metrics: Mapping[str, Any] | None = None,
             registry_path: str | Path = DEFAULT_REGISTRY_PATH) -> ModelEntry:
    """Hash ``path`` and add it to the registry as ``name:version`` (replacing that version if it
    is there); the YAML is rewritten atomically. The file is recorded relative to the registry.

    >>> register("models/ibet-demo-det.pt", "ibet-demo-det", "1", ["person", "vehicle", "boat"],
    ...          source="models/train_demo_detector.py", licence="AGPL-3.0-or-later", metrics={"mAP50": 0.93})
    """
    path, registry_path = Path(path).resolve(), Path(registry_path).resolve()
    if not path.exists():
        raise ModelError(f"{path} does not exist")
    registry = load_model_registry(registry_path)
    try:
        entry = ModelEntry(name=name, version=version, file=os.path.relpath(path, registry_path.parent),
                           sha256=model_sha256(path), format=_format_of(path), input_size=input_size,
                           classes=tuple(classes), source=source, licence=licence, metrics=dict(metrics or {}))
    except ValidationError as exc:
        raise ModelError(format_validation_error(exc, {}, f"model {name}:{version}")) from None
    models = [m for m in registry.models if (m.name, m.version) != (name, version)] + [entry]
    data = {"models": [m.model_dump(mode="json") for m in models]}
    registry_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=registry_path.parent, prefix=".registry-", suffix=".yaml")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(_HEADER + yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    os.replace(tmp, registry_path)
    entry._base_dir = registry_path.parent
    return entry
