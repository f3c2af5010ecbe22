"""A real TAK server (taky, from PyPI) on loopback and a real TAK client (pytak) that records what it
is sent, so tests check what ibet's CoT channel streams against real peers, not mocks.

:class:`TakServer` runs taky's CoT server (``taky.cot``) in a subprocess: plain TCP, no TLS, bound
to 127.0.0.1 on a free port, its root directory in a temporary one. :class:`TakSubscriber`
connects to it with pytak's TCP client and ``RXWorker`` in a thread with its own asyncio loop and
keeps every CoT event it receives.

How taky routes (taky 0.10, ``taky/cot/router.py``, ``client.py``):

- An event that is not chat or Marti-addressed is broadcast to every other connected client,
  identified or not: a client need not send its own SA first, and the sender gets no echo.
- taky re-serialises what it relays (``Event.as_element``): the XML declaration and any event
  attribute beyond version/uid/type/how/time/start/stale (``opex`` included) are dropped, times
  become millisecond ``Z`` stamps and the point's numbers are reformatted; ``<detail>`` is kept.
- Events whose type starts with ``a-`` (and a few others) are kept until stale and replayed to
  every client as it connects.
- The stream is bare concatenated ``<event>`` documents, no delimiter. A ping (``t-x-c-t``) is
  answered to its sender only; :class:`TakSubscriber` pings once to know taky has registered it
  and never records the answer (``t-x-c-t-r``).
- taky 0.10 imports ``pkg_resources``, which setuptools >= 81 no longer ships: the launcher puts a
  stand-in built on ``importlib.metadata`` in ``sys.modules`` before importing taky.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

with warnings.catch_warnings():  # pytak warns at import that aiohttp (its Marti/enrollment client) is missing
    warnings.filterwarnings("ignore", message="The 'aiohttp' package is required", category=UserWarning)
    import pytak

_LAUNCHER = """\
import importlib.metadata as md, sys, types
shim = types.ModuleType("pkg_resources")
shim.DistributionNotFound = md.PackageNotFoundError
shim.get_distribution = lambda name: types.SimpleNamespace(version=md.version(name))
sys.modules.setdefault("pkg_resources", shim)
from taky.cot.__main__ import main
main()
"""

_CONFIG = """\
[taky]
bind_ip = 127.0.0.1
root_dir = {root}
redis = false

[cot_server]
port = {port}

[dp_server]
upload_path = {root}/dp-user

[ssl]
enabled = false
"""

_PONG = b'type="t-x-c-t-r"'


class TakServerUnavailable(RuntimeError):
    """taky could not be started (not installed, or it exited or never listened)."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TakServer:
    """taky's CoT server on ``host:port`` (127.0.0.1, plain TCP) while the ``with`` block runs."""

    host = "127.0.0.1"

    def __init__(self, start_timeout_s: float = 10.0):
        self.start_timeout_s = start_timeout_s
        self.port = 0
        self._dir: Path | None = None
        self._proc: subprocess.Popen | None = None

    @property
    def log(self) -> str:
        """taky's log so far (its stderr)."""
        path = self._dir / "taky.log" if self._dir else None
        return path.read_text(errors="replace") if path and path.exists() else ""

    def start(self) -> TakServer:
        self._dir = Path(tempfile.mkdtemp(prefix="taky-"))  # short: the root holds a unix socket
        self.port = _free_port()
        (self._dir / "taky.conf").write_text(_CONFIG.format(root=self._dir, port=self.port))
        with open(self._dir / "taky.log", "wb") as log:
            self._proc = subprocess.Popen([sys.executable, "-c", _LAUNCHER, "-c", "taky.conf", "-l", "debug"],
                                          cwd=self._dir, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._fail(f"taky exited with status {self._proc.returncode}")
            try:
                socket.create_connection((self.host, self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        self._fail(f"taky did not listen on {self.host}:{self.port} within {self.start_timeout_s} s")

    def _fail(self, why: str) -> NoReturn:
        log = self.log
        self.stop()
        raise TakServerUnavailable(f"{why}; its log:\n{log[-3000:]}")

    def stop(self) -> None:
        """SIGTERM (taky finishes its 1 s select loop and closes its clients), then SIGKILL."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.send_signal(signal.SIGTERM)
                try:
                    self._proc.wait(5)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait(5)
            self._proc = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> TakServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class _Collector(pytak.RXWorker):
    """pytak's RXWorker (it reads up to each ``</event>``) handing each event to ``sink``."""

    def __init__(self, reader: asyncio.StreamReader, sink: Callable[[bytes], None]):
        super().__init__(asyncio.Queue(), None, reader)
        self.sink = sink

    async def handle_data(self, data: bytes) -> None:
        self.sink(data)

    async def run_once(self) -> None:
        data = await self.readcot()
        if data:
            await self.handle_data(data.strip())
        elif self.reader.at_eof():  # pytak's own loop would spin on a closed stream
            raise ConnectionError("the TAK server closed the connection")


class TakSubscriber:
    """A pytak TCP client of ``host:port`` recording every CoT event it receives (the bytes taky sent).

    The constructor returns once taky has registered the client (it answered our ping), so events
    sent after that reach it; events taky replays on connect are recorded too.
    """

    def __init__(self, host: str, port: int, connect_timeout_s: float = 10.0):
        self._events: list[bytes] = []
        self._cond = threading.Condition()
        self._registered = False
        self.error: BaseException | None = None
        self._loop = asyncio.new_event_loop()
        self._task: asyncio.Task | None = None
        self._thread = threading.Thread(target=self._run, args=(host, port), name="tak-subscriber", daemon=True)
        self._thread.start()
        with self._cond:
            if not self._cond.wait_for(lambda: self._registered or self.error, connect_timeout_s):
                self.close()
                raise TimeoutError(f"taky at {host}:{port} did not answer a ping within {connect_timeout_s} s")
        if self.error is not None:
            self.close()
            raise ConnectionError(f"could not subscribe to taky at {host}:{port}: {self.error!r}")

    def _run(self, host: str, port: int) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._task = self._loop.create_task(self._main(host, port))
            self._loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # kept for wait_for and the constructor to report
            with self._cond:
                self.error = exc
                self._cond.notify_all()
        finally:
            self._loop.close()

    async def _main(self, host: str, port: int) -> None:
        config = {"COT_URL": f"tcp://{host}:{port}", "TAK_PROTO": "0"}
        reader, writer = await pytak.protocol_factory(config)
        try:
            ping = pytak.cot_event(uid=f"ibet-test-subscriber-{os.getpid()}", cot_type="t-x-c-t", how="h-g-i-g-o")
            await pytak.TXWorker(asyncio.Queue(), config, writer).send_data(pytak.serialize_cot(ping))
            await _Collector(reader, self._receive).run()
        finally:
            writer.close()

    def _receive(self, event: bytes) -> None:
        with self._cond:
            if _PONG in event:
                self._registered = True
            else:
                self._events.append(event)
            self._cond.notify_all()

    def events(self) -> list[bytes]:
        """Every CoT event received so far, in order."""
        with self._cond:
            return list(self._events)

    def wait_for(self, predicate: Callable[[bytes], bool], timeout_s: float) -> list[bytes]:
        """The received events matching ``predicate``, once there is at least one or ``timeout_s``
        has passed (then possibly ``[]``)."""
        def matching() -> list[bytes]:
            return [event for event in self._events if predicate(event)]

        with self._cond:
            self._cond.wait_for(lambda: matching() or self.error, timeout_s)
            found = matching()
            if not found and self.error is not None:
                raise ConnectionError(f"the subscriber stopped: {self.error!r}") from self.error
            return found

    def close(self) -> None:
        if self._thread.is_alive():
            try:
                self._loop.call_soon_threadsafe(lambda: self._task is not None and self._task.cancel())
            except RuntimeError:  # the loop closed meanwhile
                pass
            self._thread.join(5)

    def __enter__(self) -> TakSubscriber:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
