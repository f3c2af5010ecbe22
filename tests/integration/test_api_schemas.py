"""The push API and the alert actions API hold to their own OpenAPI: schemathesis (an independent
fuzzer) generates requests from each schema, valid and invalid, and sends them to the live server
(uvicorn on loopback, configured as in production); every answer must be documented (status,
content type, body schema: ``{error, detail}`` for every refusal) and none may be a 5xx.

The examples per operation are bounded (``max_examples``) so the run stays short in CI.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance
from wire_samples import alert

from alerts.api import create_app as create_actions_app
from alerts.identity import ContactTokens
from alerts.lifecycle import AlertLifecycle
from ibet.bus import MemoryBus
from ibet.clock import SystemClock
from ibet.config import DatabaseSettings, IngestSettings
from ibet.db import make_engine, migrate
from ibet.registry import load_registry
from ibet_testing.http_server import serve_in_thread
from ingest import credentials
from ingest.frame_store import FrameLedger
from ingest.health import FeedHealth
from ingest.push_api import create_push_app

DRONE = "drone-vista-1"
EXAMPLES = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
# A schema cannot say "a JPEG" or "an alert that exists": valid-looking requests are refused (400, 404)
# by design, so the check that valid data is accepted does not apply.
NOT_APPLICABLE = [positive_data_acceptance]


class Live:
    def __init__(self, app, url: str, headers: dict[str, str]):
        self.app, self.url, self.headers = app, url, headers


@pytest.fixture(scope="module")
def push_api(tmp_path_factory) -> Iterator[Live]:
    folder = tmp_path_factory.mktemp("push-schema")
    registry_path = folder / "registry.yaml"
    shutil.copy("config/registry.yaml", registry_path)
    token = credentials.enroll(registry_path, DRONE)
    engine = make_engine(DatabaseSettings(url=f"sqlite:///{folder}/ibet.sqlite3"))
    migrate(engine)
    clock, bus = SystemClock(), MemoryBus()
    app = create_push_app(IngestSettings(rate_limit_fps=1000.0, rate_limit_burst=1000, auth_max_failures=10**6),
                          load_registry(registry_path), bus.producer(), FrameLedger(engine, clock), clock,
                          FeedHealth({DRONE: ("pac-blaine", 0.5)}), registry_path=registry_path)
    with serve_in_thread(app) as url:
        yield Live(app, url, {"Authorization": f"Bearer {token}"})
    engine.dispose()


@pytest.fixture(scope="module")
def actions_api(tmp_path_factory) -> Iterator[Live]:
    folder = tmp_path_factory.mktemp("actions-schema")
    engine = make_engine(DatabaseSettings(url=f"sqlite:///{folder}/ibet.sqlite3"))
    migrate(engine)
    clock = SystemClock()
    lifecycle, tokens = AlertLifecycle(engine, clock), ContactTokens(engine, clock)
    lifecycle.open(alert())
    token = tokens.issue("usbp-blaine", "blaine-watch-commander", level=1).token
    app = create_actions_app(lifecycle, tokens, link_secret="a-link-secret-of-at-least-32-bytes!", clock=clock)
    with serve_in_thread(app) as url:
        yield Live(app, url, {"Authorization": f"Bearer {token}"})
    engine.dispose()


def _fuzz(live: Live) -> int:
    """Every operation of ``live``'s OpenAPI, ``EXAMPLES`` generated cases each, sent and checked;
    the number of operations."""
    schema = schemathesis.openapi.from_dict(live.app.openapi())
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:

        @EXAMPLES
        @given(case=operation.as_strategy())
        def check(case) -> None:
            case.call_and_validate(base_url=live.url, headers=live.headers, excluded_checks=NOT_APPLICABLE)

        check()
    return len(operations)


def test_the_push_api_answers_as_its_openapi_says(push_api: Live):
    assert _fuzz(push_api) >= 2  # the frames endpoint and the health check


def test_the_alert_actions_api_answers_as_its_openapi_says(actions_api: Live):
    assert _fuzz(actions_api) >= 6  # view, audit, acknowledge, escalate, resolve, reopen, the link pages


def test_every_documented_refusal_has_the_error_schema(push_api: Live, actions_api: Live):
    for live in (push_api, actions_api):
        spec = live.app.openapi()
        for path, methods in spec["paths"].items():
            for method, operation in methods.items():
                for status, response in operation["responses"].items():
                    if not status.startswith(("4", "5")):
                        continue
                    content = response["content"]
                    assert set(content) <= {"application/json", "text/html"}, (path, method, status)
                    if "text/html" in content:  # only the pages a partner's link opens
                        assert path == "/a/{link}", (path, method, status)
                    if "application/json" in content:
                        schema = content["application/json"]["schema"]["$ref"]
                        assert schema.rsplit("/", 1)[-1] in ("ErrorBody", "ConflictBody"), (path, method, status)
    body = push_api.app.openapi()["paths"]["/v1/sensors/{sensor_id}/frames"]["post"]["requestBody"]
    assert body["content"]["multipart/form-data"]["schema"]["required"] == ["frame"]


def test_unknown_paths_and_methods_answer_in_the_error_shape(push_api: Live):
    import httpx

    for method, path, status in (("GET", "/nothing", 404), ("GET", f"/v1/sensors/{DRONE}/frames", 405)):
        answer = httpx.request(method, push_api.url + path)
        assert answer.status_code == status and set(answer.json()) == {"error", "detail"}, answer.text



