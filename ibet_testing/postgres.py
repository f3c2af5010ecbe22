"""A real throw-away PostgreSQL server (Debian's ``postgresql`` package) on loopback, for tests.

:class:`LocalPostgres` runs ``initdb`` into a fresh data directory and starts the server with
``pg_ctl``: TCP on ``127.0.0.1:<free port>``, its unix socket in its own folder, ``trust`` auth for
the ``postgres`` superuser, durability off (fsync, synchronous commit: it is a test server).
PostgreSQL refuses to run as root: as root, the server runs as the ``postgres`` OS user (through
``runuser``) in a temporary folder that user owns, removed on :meth:`LocalPostgres.stop`.

``python -m ibet_testing.postgres run [WORKDIR]`` runs one in the foreground and prints its URL.

    >>> with LocalPostgres(tmp_path) as pg:  # doctest: +SKIP
    ...     engine = make_engine(DatabaseSettings(url=pg.url))
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ibet.exceptions import IbetError

DEBIAN_ROOT = Path("/usr/lib/postgresql")
SERVER_USER = "postgres"  # the OS user the server runs as when we are root (created by Debian's package)
DB_USER = "postgres"  # the database superuser initdb creates
_MAX_SOCKET_DIR = 90  # a unix socket path is at most 107 bytes; ".s.PGSQL.<port>" is appended


class PostgresUnavailable(IbetError):
    """The PostgreSQL binaries are missing, or the server did not come up; the message says which."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_bindir() -> Path:
    """The ``bin`` folder of the newest PostgreSQL in ``/usr/lib/postgresql/<major>/bin`` (Debian's layout),
    else the folder of an ``initdb`` on ``PATH``. PostgresUnavailable when there is neither."""
    found = [p.parent for p in DEBIAN_ROOT.glob("*/bin/initdb") if (p.parent / "pg_ctl").exists()]

    def major(bindir: Path) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", bindir.parent.name)) or (0,)

    if found:
        return max(found, key=major)
    initdb = shutil.which("initdb")
    if initdb:
        bindir = Path(initdb).resolve().parent  # through symlinks such as /usr/local/bin/initdb
        if (bindir / "pg_ctl").exists():
            return bindir
    raise PostgresUnavailable(
        f"PostgreSQL is not installed (no {DEBIAN_ROOT}/*/bin/initdb, no initdb on PATH): "
        "apt-get install postgresql, or run the README's set-up (scripts/setup.sh --test)")


class LocalPostgres:
    """Start with :meth:`start` (or ``with``); ``url`` is then ``postgresql+psycopg://postgres@127.0.0.1:<port>/postgres``."""

    def __init__(self, workdir: Path, bindir: Path | None = None):
        self.workdir = Path(workdir)
        self.bindir = bindir
        self.port = 0
        self.server_dir: Path | None = None  # data/, the log and the socket; workdir unless we are root
        self._own_dirs: list[Path] = []  # temporary folders we made, removed on stop
        self._as_user: list[str] = []  # the runuser prefix when we are root
        self._owner: tuple[int, int] | None = None  # uid, gid of the server's user when we are root
        self._running = False

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        """The SQLAlchemy URL of ``database`` on this server."""
        return f"postgresql+psycopg://{DB_USER}@127.0.0.1:{self.port}/{database}"

    @property
    def data_dir(self) -> Path:
        assert self.server_dir is not None, "start() first"
        return self.server_dir / "data"

    @property
    def log_path(self) -> Path:
        assert self.server_dir is not None, "start() first"
        return self.server_dir / "postgres.log"

    def start(self, timeout_s: float = 60) -> str:
        """initdb and start the server; its URL once it accepts connections."""
        if self._running:
            return self.url
        self.bindir = self.bindir or find_bindir()
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._prepare_dirs()
            self._initdb()
            for attempt in range(3):  # the free port may be taken between choosing and binding it
                self.port = free_port()
                try:
                    self._start_server(timeout_s)
                    break
                except PostgresUnavailable:
                    if attempt == 2 or "could not bind" not in self.log_tail():
                        raise
        except BaseException:
            self._cleanup()
            raise
        self._running = True
        return self.url

    def _prepare_dirs(self) -> None:
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam(SERVER_USER)
            except KeyError:
                raise PostgresUnavailable(
                    f"running as root, and PostgreSQL refuses to: there is no {SERVER_USER!r} OS user to run it as "
                    "(Debian's postgresql package creates it)") from None
            runuser = shutil.which("runuser")
            if runuser is None:
                raise PostgresUnavailable("running as root, and PostgreSQL refuses to: runuser (util-linux) is missing")
            self._as_user = [runuser, "-u", SERVER_USER, "--"]
            self._owner = (user.pw_uid, user.pw_gid)
            # The workdir (pytest's tmp folders are 0700 root) may be out of the postgres user's reach.
            self.server_dir = self._temp_dir("ibet-postgres-")
            (self.workdir / "server-dir").write_text(f"{self.server_dir}\n")
        else:
            self.server_dir = self.workdir
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def _temp_dir(self, prefix: str) -> Path:
        """A new folder in the system's temp folder, owned by the server's user, removed on stop."""
        folder = Path(tempfile.mkdtemp(prefix=prefix))
        self._own_dirs.append(folder)
        if self._owner is not None:
            os.chown(folder, *self._owner)
        return folder

    def _socket_dir(self) -> Path:
        assert self.server_dir is not None
        sock = self.server_dir / "sock"
        if len(str(sock)) > _MAX_SOCKET_DIR:
            return self._temp_dir("ibet-pgsock-")  # the workdir's path is too long for a unix socket
        sock.mkdir(exist_ok=True)
        if self._owner is not None:
            os.chown(sock, *self._owner)
        return sock

    def _run(self, argv: list[str], timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
        """Run one command as the server's user, in the server's folder; its output captured."""
        try:
            return subprocess.run([*self._as_user, *argv], capture_output=True, text=True, cwd=self.server_dir,
                                  timeout=timeout_s, env={**os.environ, "LC_ALL": "C"})
        except subprocess.TimeoutExpired as exc:
            raise PostgresUnavailable(f"{Path(argv[0]).name} did not finish within {timeout_s:.0f} s:\n"
                                      f"{exc.stdout or ''}{exc.stderr or ''}\n{self.log_tail()}") from None

    def _initdb(self) -> None:
        assert self.bindir is not None
        done = self._run([str(self.bindir / "initdb"), "-D", str(self.data_dir), "-U", DB_USER, "--auth=trust",
                          "--encoding=UTF8", "--no-locale", "--no-sync"])
        if done.returncode != 0:
            raise PostgresUnavailable(f"initdb failed (exit {done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}")

    def _start_server(self, timeout_s: float) -> None:
        assert self.bindir is not None
        sock = self._socket_dir()
        options = " ".join([
            "-c listen_addresses=127.0.0.1", f"-p {self.port}", f"-c unix_socket_directories={sock}",
            "-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off", "-c max_connections=200",
        ])
        done = self._run([str(self.bindir / "pg_ctl"), "start", "-w", "-t", str(int(timeout_s)), "-D", str(self.data_dir),
                          "-l", str(self.log_path), "-o", options], timeout_s=timeout_s + 30)
        if done.returncode != 0:
            self._stop_server()
            raise PostgresUnavailable(f"the server did not start (pg_ctl exit {done.returncode}):\n"
                                      f"{done.stdout[-2000:]}{done.stderr[-2000:]}\n{self.log_tail()}")
        self._wait_ready(timeout_s)

    def _wait_ready(self, timeout_s: float) -> None:
        """Until the server accepts connections on its TCP port (pg_isready; a TCP connect without it)."""
        assert self.bindir is not None
        pg_isready = self.bindir / "pg_isready"
        deadline = time.monotonic() + timeout_s
        while True:
            if pg_isready.exists():
                done = subprocess.run([str(pg_isready), "-q", "-h", "127.0.0.1", "-p", str(self.port), "-U", DB_USER,
                                       "-d", "postgres", "-t", "2"], capture_output=True, text=True)
                if done.returncode == 0:
                    return
            else:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=2).close()
                    return
                except OSError:
                    pass
            if time.monotonic() > deadline:
                self._stop_server()
                raise PostgresUnavailable(f"the server did not accept connections on 127.0.0.1:{self.port} "
                                          f"within {timeout_s:.0f} s:\n{self.log_tail()}")
            time.sleep(0.2)

    def log_tail(self, chars: int = 3000) -> str:
        if self.server_dir is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-chars:]

    def _stop_server(self) -> None:
        if self.bindir is None or self.server_dir is None or not (self.data_dir / "postmaster.pid").exists():
            return
        pg_ctl = str(self.bindir / "pg_ctl")
        done = self._run([pg_ctl, "stop", "-w", "-t", "30", "-m", "fast", "-D", str(self.data_dir)], timeout_s=60)
        if done.returncode != 0:
            self._run([pg_ctl, "stop", "-w", "-t", "30", "-m", "immediate", "-D", str(self.data_dir)], timeout_s=60)

    def _cleanup(self) -> None:
        for folder in self._own_dirs:
            shutil.rmtree(folder, ignore_errors=True)
        self._own_dirs.clear()

    def stop(self) -> None:
        """Stop the server (fast shutdown: open sessions are ended); remove the temporary folders made for it."""
        try:
            self._stop_server()
        finally:
            self._running = False
            self._cleanup()

    def __enter__(self) -> LocalPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    if argv[:1] == ["run"]:
        workdir = Path(argv[1]) if len(argv) > 1 else Path(tempfile.mkdtemp(prefix="ibet-postgres-run-"))
        signal.signal(signal.SIGTERM, _interrupt)  # kill PID stops the server too (pg_ctl detaches it)
        try:
            with LocalPostgres(workdir) as pg:
                print(f"PostgreSQL ({pg.bindir}) on {pg.url} (Ctrl-C stops it)", flush=True)
                try:
                    signal.pause()
                except KeyboardInterrupt:
                    pass
        finally:
            if len(argv) == 1:
                shutil.rmtree(workdir, ignore_errors=True)
        return 0
    print("usage: python -m ibet_testing.postgres run [WORKDIR]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
