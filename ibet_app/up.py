"""``ibet up``: the pipeline as separate processes on a real Kafka broker, for one machine or the
first of several (start more ``ibet run detect`` workers elsewhere with the same configuration).

Each stage is its own ``ibet run STAGE`` process (a consumer-group worker), plus the console's
store, the console itself, (``push_api``) the drones' push API (``ibet ingest serve``) and one
``ibet ingest stream`` per video stream (``streams``: STANAG 4609 drones, RTMP/RTSP feeds); every child gets the broker from the environment
(``IBET_BUS__KIND=kafka``, ``IBET_BUS__KAFKA__BOOTSTRAP_SERVERS``) and a free metrics port. The
topics are created first. :class:`Pipeline` starts, watches and stops them; its logs go to one file
per process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

STAGES = ("detect", "fuse", "alerts", "console-store")


@dataclass
class Child:
    name: str
    command: list[str]
    log_path: Path
    process: subprocess.Popen | None = None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class Pipeline:
    """The stage processes of one pipeline on the broker at ``bootstrap``."""

    bootstrap: str
    config: Path | None = None
    stages: tuple[str, ...] = STAGES
    console: bool = True
    push_api: bool = False  # also `ibet ingest serve`, the drones' push API
    log_dir: Path = Path("var/up")
    env: dict[str, str] = field(default_factory=dict)
    replicas: dict[str, int] = field(default_factory=dict)  # stage -> workers in its group (default 1)
    streams: dict[str, str | None] = field(default_factory=dict)  # sensor -> `ibet ingest stream` source (None: registry)
    children: list[Child] = field(default_factory=list)

    def environment(self) -> dict[str, str]:
        return {**os.environ, "IBET_BUS__KIND": "kafka",
                "IBET_BUS__KAFKA__BOOTSTRAP_SERVERS": json.dumps([self.bootstrap]), "IBET_METRICS__PORT": "0",
                **self.env}

    def _ibet(self, *args: str) -> list[str]:
        config = ["--config", str(self.config)] if self.config is not None else []
        return [sys.executable, "-m", "ibet_app.cli", *args, *config]

    def create_topics(self) -> None:
        subprocess.run(self._ibet("topics", "create"), env=self.environment(), check=True, capture_output=True,
                       timeout=120)

    def start(self) -> Pipeline:
        """Create the topics, then start every stage (and the console) as its own process."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.create_topics()
        self.children = []
        for stage in self.stages:
            n = self.replicas.get(stage, 1)
            for i in range(n):
                name = stage if n == 1 else f"{stage}-{i + 1}"
                self.children.append(Child(name, self._ibet("run", stage), self.log_dir / f"{name}.log"))
        if self.console:
            self.children.append(Child("console", self._ibet("console"), self.log_dir / "console.log"))
        if self.push_api:
            self.children.append(Child("ingest", self._ibet("ingest", "serve"), self.log_dir / "ingest.log"))
        for sensor, source in self.streams.items():  # one `ibet ingest stream` per drone or camera stream
            command = self._ibet("ingest", "stream", "--sensor", sensor, *(["--source", source] if source else []))
            self.children.append(Child(f"stream-{sensor}", command, self.log_dir / f"stream-{sensor}.log"))
        for child in self.children:
            self.start_child(child)
        return self

    def start_child(self, child: Child) -> None:
        log = open(child.log_path, "ab")  # noqa: SIM115 - owned by the child process's lifetime
        child.process = subprocess.Popen(child.command, env=self.environment(), stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        log.close()

    def child(self, name: str) -> Child:
        return next(c for c in self.children if c.name == name)

    def restart(self, name: str) -> Child:
        """Start ``name`` again (after it died or was killed), appending to its log."""
        child = self.child(name)
        if child.alive():
            raise RuntimeError(f"{name} is still running (pid {child.process.pid})")
        self.start_child(child)
        return child

    def dead(self) -> list[Child]:
        return [c for c in self.children if not c.alive()]

    def stop(self, timeout_s: float = 30.0) -> dict[str, int | None]:
        """SIGTERM every child (each finishes its batch and commits), then kill what is left."""
        for child in self.children:
            if child.alive():
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for child in self.children:
            if child.process is None:
                continue
            try:
                child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait(10)
        return {c.name: c.process.returncode if c.process else None for c in self.children}

    def tail(self, name: str, chars: int = 3000) -> str:
        path = self.child(name).log_path
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""
