"""The real servers a drone's feed passes through, started on loopback for a test: Mosquitto (the
MQTT broker a DJI dock's bridge publishes aircraft state to) and nginx with its RTMP module (the
media server a dock or ground station pushes its video to). Each is Debian's own package."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline_samples import service_missing

RTMP_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_listening(process: subprocess.Popen, port: int, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and process.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    process.kill()
    said = log.read_text(errors="replace")[-400:] if log is not None and log.exists() else ""
    service_missing(f"{what} did not listen on 127.0.0.1:{port}: {said}")


@contextmanager
def _stopped_after(process: subprocess.Popen) -> Iterator[None]:
    try:
        yield
    finally:
        process.terminate()
        process.wait(5)


@contextmanager
def mosquitto(folder: Path) -> Iterator[int]:
    """A Mosquitto broker on a free loopback port (anonymous, no persistence); yields the port."""
    binary = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if binary is None:
        service_missing("Mosquitto (Debian mosquitto) is not installed")
    port = free_tcp_port()
    conf, log = folder / "mosquitto.conf", folder / "mosquitto.log"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    f"log_dest file {log}\n")
    process = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    _wait_listening(process, port, "Mosquitto", log)
    with _stopped_after(process):
        yield port


@contextmanager
def nginx_rtmp(folder: Path) -> Iterator[int]:
    """nginx with the RTMP module (Debian libnginx-mod-rtmp) serving application ``live`` on a free
    loopback port: publishers push ``rtmp://127.0.0.1:PORT/live/KEY``, players pull the same URL."""
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx is None or not RTMP_MODULE.exists():
        service_missing("nginx with the RTMP module (Debian libnginx-mod-rtmp) is not installed")
    port = free_tcp_port()
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "error.log"
    (folder / "nginx.conf").write_text(
        f"load_module {RTMP_MODULE};\ndaemon off;\nmaster_process off;\npid {folder / 'nginx.pid'};\n"
        f"error_log {log} info;\nevents {{ worker_connections 64; }}\n"
        f"rtmp {{ server {{ listen 127.0.0.1:{port}; application live {{ live on; record off; }} }} }}\n")
    process = subprocess.Popen([nginx, "-p", str(folder), "-c", str(folder / "nginx.conf"), "-e", str(log)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    _wait_listening(process, port, "nginx-rtmp", log)
    with _stopped_after(process):
        yield port


@contextmanager
def rtsp_server(folder: Path) -> Iterator[tuple[int, int]]:
    """Debian's rtsp-server-perl (RTSP::Server): publishers ANNOUNCE/RECORD to the source port, players
    pull from the client port; RTP goes over UDP only (it does not interleave RTP in the RTSP
    connection). Yields (source port, client port)."""
    binary = shutil.which("rtsp-server-perl")
    if binary is None:
        service_missing("rtsp-server-perl (Debian rtsp-server-perl) is not installed")
    source, client = free_tcp_port(), free_tcp_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:  # a free run of UDP ports for its RTP
        sock.bind(("127.0.0.1", 0))
        rtp_start = sock.getsockname()[1] & ~1
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "rtsp-server.log"
    with log.open("wb") as out:
        process = subprocess.Popen([binary, "--clientport", str(client), "--serverport", str(source),
                                    "--client_listen_address", "127.0.0.1", "--source_listen_address", "127.0.0.1",
                                    "--rtp_start_port", str(rtp_start), "--loglevel", "3"],
                                   stdout=out, stderr=subprocess.STDOUT)
    _wait_listening(process, client, "rtsp-server-perl", log)
    with _stopped_after(process):
        yield source, client
