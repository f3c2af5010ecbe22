"""Rendering deploy/k8s with the real kustomize, and the CRD schemas to check the objects with.

kustomize and the CRDs come from scripts/setup-k8s-tools.sh (into ``$IBET_CACHE_DIR`` or
``~/.cache/ibet``). Without them a test skips with the reason locally and fails under CI=true.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
#: Everything kustomize renders: the overlays, and the one-off Job of `ibet dlq replay`.
RENDERED = (*OVERLAYS, "ops/dlq-replay")
IN_CI = os.environ.get("CI", "").lower() == "true"
SETUP = "run scripts/setup-k8s-tools.sh (scripts/setup.sh --test does)"


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """PyYAML's safe loader, reading a bare ``=`` (an enum value in KEDA's CRDs) as the string it is."""


_Loader.add_constructor("tag:yaml.org,2002:value", lambda loader, node: loader.construct_scalar(node))


def load_all(text: str) -> list[Any]:
    return [doc for doc in yaml.load_all(text, Loader=_Loader) if doc]


def tools_missing(reason: str) -> None:
    """Skip locally; fail in CI, where the tools must be there (as tests/conftest.py's service_missing)."""
    if IN_CI:
        pytest.fail(f"CI=true and a required tool is missing: {reason}", pytrace=False)
    pytest.skip(reason)


def cache_dir() -> Path:
    return Path(os.environ.get("IBET_CACHE_DIR") or Path.home() / ".cache" / "ibet")


def kustomize_binary() -> Path | None:
    built = cache_dir() / "bin" / "kustomize"
    if built.is_file():
        return built
    found = shutil.which("kustomize")
    return Path(found) if found else None


def render(overlay: str) -> list[dict[str, Any]]:
    """``kustomize build`` of ``overlays/<name>`` or of a folder under deploy/k8s (``ops/dlq-replay``);
    the registry and rosters come from config/, outside deploy/k8s."""
    binary = kustomize_binary()
    if binary is None:
        tools_missing(f"kustomize is not installed: {SETUP}")
    done = subprocess.run([str(binary), "build", "--load-restrictor", "LoadRestrictionsNone", str(K8S / ("overlays" if "/" not in overlay else "") / overlay)],
                          capture_output=True, text=True)
    assert done.returncode == 0, f"kustomize build {overlay} failed:\n{done.stderr}"
    return load_all(done.stdout)


def crd_dirs() -> dict[str, Path]:
    base = cache_dir() / "k8s-schemas"
    return {name: base / name for name in ("strimzi", "keda", "prometheus-operator")}


def load_crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """openAPIV3Schema of every CRD version obtained by the set-up, by (apiVersion, kind)."""
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    for name, folder in crd_dirs().items():
        files = sorted(folder.glob("*.yaml")) if folder.is_dir() else []
        if not files:
            tools_missing(f"the {name} CRDs are not in {folder}: {SETUP}")
        for path in files:
            for crd in load_all(path.read_text()):
                if crd.get("kind") != "CustomResourceDefinition":
                    continue
                group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
                for version in crd["spec"]["versions"]:
                    schemas[(f"{group}/{version['name']}", kind)] = version["schema"]["openAPIV3Schema"]
    return schemas


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    """The objects of one kind, by name."""
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}
