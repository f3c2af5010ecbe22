"""The layers of the packages (the import contracts in pyproject.toml, checked by import-linter):
the application shell (ibet_app) above the stages, the kernel (ibet) below them, the pipeline's
stages independent of each other, the test servers (ibet_testing) out of the product's runtime."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path, config: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT_IMPORTS), "--config", str(config), "--no-cache"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_project_keeps_its_layers() -> None:
    result = _lint(REPO, REPO / "pyproject.toml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def _tree_with(tmp_path: Path, importer: str, imported: str) -> Path:
    """The project's packages as empty stand-ins, where module ``importer`` imports ``imported``."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    for package in config["root_packages"]:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    named = [m for contract in config["contracts"] for m in contract.get("source_modules", [])]
    for module in {*named, imported}:
        (tmp_path / Path(*module.split(".")).with_suffix(".py")).write_text("")
    (tmp_path / Path(*importer.split(".")).with_suffix(".py")).write_text(f"import {imported}\n")
    # the same contracts, as an .importlinter INI file import-linter reads from anywhere
    lines = ["[importlinter]", "root_packages =", *(f"    {p}" for p in config["root_packages"])]
    for i, contract in enumerate(config["contracts"]):
        lines.append(f"[importlinter:contract:{i}]")
        for key, value in contract.items():
            if isinstance(value, list):
                lines += [f"{key} =", *(f"    {v}" for v in value)]
            else:
                lines.append(f"{key} = {str(value).lower() if isinstance(value, bool) else value}")
    path = tmp_path / ".importlinter"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(("importer", "imported", "contract"), [
    ("ibet.config", "detect.settings", "the kernel below"),         # the kernel imports a stage
    ("fuse.stage", "ibet_app.cli", "the kernel below"),             # a stage imports the shell
    ("detect.frames", "ingest.frame_checks", "know nothing of each other"),  # a stage imports another
    ("ibet_app.demo", "ibet_testing.kafka_broker", "never imports the test servers"),
    ("console.app", "ibet_testing.http_server", "the kernel below"),
])
def test_a_broken_layer_is_caught(tmp_path: Path, importer: str, imported: str, contract: str) -> None:
    config = _tree_with(tmp_path, importer, imported)
    result = _lint(tmp_path, config)
    assert result.returncode == 1, result.stdout + result.stderr
    broken = [line for line in result.stdout.splitlines() if line.endswith("BROKEN")]
    assert any(contract in line for line in broken), result.stdout


def test_the_cli_runs_without_the_test_servers() -> None:
    """The image leaves ibet_testing out: the CLI and every stage factory still load and answer."""
    hide = ("import sys\n"
            "class Hide:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] == 'ibet_testing': raise ModuleNotFoundError(name)\n"
            "sys.meta_path.insert(0, Hide())\n"
            "import alerts, detect, fuse, console.store, ibet_app.demo, ibet_app.up, ibet_app.stages\n"
            "from ibet_app.cli import app\n"
            "app(['run', '--help'])\n")
    result = subprocess.run([sys.executable, "-c", hide], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Run one stage" in result.stdout
