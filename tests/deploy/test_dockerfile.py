"""Sanity of the Dockerfile and .dockerignore, read as text.

What this does NOT exercise: no image is built here (the machines that run the tests have no
container daemon and cannot pull python:3.11-slim), so whether pip resolves, whether OpenCV finds
its libraries and whether the GPU variant sees a CUDA device are untested. What it checks is what a
reviewer would: a non-root numeric user that matches the manifests' runAsUser, a health check,
nothing piped from the network into a shell, the project installed with pip from its own sources,
nothing large or secret in the build context, every package the image needs copied in.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from dataclasses import dataclass

import pytest
from k8s_render import REPO, render

DOCKERFILE = REPO / "Dockerfile"


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str
    args: str


def parse(text: str) -> list[Instruction]:
    """Dockerfile instructions with continuation lines joined and comments dropped."""
    out, pending, start = [], "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending += stripped[:-1].rstrip() + " "
            continue
        keyword, _, args = (pending + stripped).partition(" ")
        out.append(Instruction(start, keyword.upper(), args.strip()))
        pending = ""
    return out


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    result: list[list[Instruction]] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


@pytest.fixture(scope="module")
def dockerfile() -> list[Instruction]:
    return parse(DOCKERFILE.read_text())


def test_the_parser_reads_continuations_and_skips_comments():
    parsed = parse("# c\nFROM a AS b\nRUN x \\\n    # note\n    && y\nUSER 1\n")
    assert [(i.keyword, i.args) for i in parsed] == [("FROM", "a AS b"), ("RUN", "x && y"), ("USER", "1")]


def test_the_image_is_python_311_slim(dockerfile):
    arg = next(i for i in dockerfile if i.keyword == "ARG" and i.args.startswith("PYTHON_IMAGE="))
    assert arg.args == "PYTHON_IMAGE=python:3.11-slim"
    assert all(i.args.split()[0] == "${PYTHON_IMAGE}" for i in dockerfile if i.keyword == "FROM")


def test_the_final_stage_runs_as_the_manifests_non_root_user(dockerfile):
    final = stages(dockerfile)[-1]
    users = [i for i in final if i.keyword == "USER"]
    assert users, "the final stage sets no USER"
    uid, _, gid = users[-1].args.partition(":")
    assert uid.isdigit() and int(uid) > 0, "USER must be a numeric non-root uid (runAsNonRoot checks numbers)"
    run_as = {pod["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
              for pod in render("prod") if pod["kind"] in ("Deployment", "Job")}
    assert run_as == {int(uid)}
    assert not gid or int(gid) > 0


def test_it_has_a_health_check_and_an_ibet_entrypoint(dockerfile):
    final = stages(dockerfile)[-1]
    health = [i for i in final if i.keyword == "HEALTHCHECK"]
    assert health and "9400" in health[0].args
    assert next(i for i in final if i.keyword == "ENTRYPOINT").args == '["ibet"]'


def test_nothing_from_the_network_is_piped_into_a_shell(dockerfile):
    for ins in dockerfile:
        if ins.keyword == "RUN":
            assert not re.search(r"(curl|wget)[^|;&]*\|\s*(ba|z|da)?sh\b", ins.args), f"line {ins.line}: curl|sh"
        if ins.keyword == "ADD":
            assert not re.search(r"https?://", ins.args), f"line {ins.line}: ADD from a URL"
    bad = parse("RUN curl -fsSL https://x.example/install.sh | sh\n")[0]
    assert re.search(r"(curl|wget)[^|;&]*\|\s*(ba|z|da)?sh\b", bad.args)  # the check can see one


def test_the_project_is_installed_from_its_own_sources_with_every_package(dockerfile):
    build = stages(dockerfile)[0]
    assert any(i.keyword == "RUN" and "pip install ." in i.args for i in build)
    copied = {i.args.split()[0] for i in build if i.keyword == "COPY"}
    packages = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    for pattern in packages:
        name = pattern.rstrip("*").removesuffix(".")
        if name == "ibet_testing":  # test servers: the product's runtime never imports them
            assert name not in copied, "the image carries the test servers (ibet_testing)"
            continue
        assert name in copied, f"the image does not copy the package {name}"
    for meta in ("pyproject.toml", "README.md", "LICENSE"):
        assert any(meta in i.args for i in build if i.keyword == "COPY")


def _ignored(path: str, patterns: list[str]) -> bool:
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        p = pattern.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path, p + "/*") or path.startswith(p + "/"):
            ignored = not negate
    return ignored


def test_the_build_context_leaves_out_environments_data_and_tests():
    patterns = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    for path in (".venv/bin/python", ".git/config", "reports/x.json", "datasets/a.jpg", "tests/conftest.py", "var/x"):
        assert _ignored(path, patterns), f"{path} would be sent to the image build"
    for path in ("ibet_app/cli.py", "pyproject.toml", "models/registry.yaml", "config/ibet.yaml", "README.md", "LICENSE"):
        assert not _ignored(path, patterns), f"{path} is needed by the build but ignored"


def test_the_gpu_variant_is_a_build_argument_that_checks_its_torch(dockerfile):
    build = stages(dockerfile)[0]
    assert any(i.keyword == "ARG" and i.args.startswith("VARIANT=") for i in build)
    assert any(i.keyword == "RUN" and "torch.version.cuda" in i.args and '"$VARIANT" = gpu' in i.args for i in build)
    gpu_images = {c["image"] for d in render("prod") if d["kind"] == "Deployment"
                  for c in d["spec"]["template"]["spec"]["containers"] if "gpu" in c["image"]}
    assert gpu_images, "prod runs no GPU image"
