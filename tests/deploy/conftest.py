"""Fixtures of the deploy/k8s tests: the rendered manifests and the CRD schemas (tests/deploy/k8s_render.py).

The helpers live in k8s_render, not here: every test folder has a conftest.py, so ``from conftest
import ...`` would reach whichever was imported last.
"""

from __future__ import annotations

from typing import Any

import pytest
from k8s_render import RENDERED, load_crd_schemas, render


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict[str, Any]]]:
    """The objects of every overlay (and of ops/dlq-replay), rendered once per session."""
    return {name: render(name) for name in RENDERED}


@pytest.fixture(scope="session")
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    return load_crd_schemas()
