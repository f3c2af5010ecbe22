"""A real single-node Apache Kafka broker (KRaft: broker and controller in one JVM) on loopback.

The broker jars come from Maven Central through Maven (``kafka-broker-pom.xml`` beside this
file) into a cache folder, once; after that starting a broker needs no network. Used by the
test suite's session fixture and by ``ibet bench``; ``python -m ibet_testing.kafka_broker``
resolves the jars (``resolve``) or runs a broker in the foreground (``run``).
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from ibet.exceptions import IbetError
from ibet.topics import MAX_RECORD_BYTES

KAFKA_VERSION = "4.1.1"
POM = Path(__file__).with_name("kafka-broker-pom.xml")


class KafkaBrokerUnavailable(IbetError):
    """Java, Maven or the jars are missing, or the broker did not come up; the message says which."""


def cache_dir() -> Path:
    """Where resolved jars live: ``$IBET_CACHE_DIR`` or ``~/.cache/ibet``."""
    return Path(os.environ.get("IBET_CACHE_DIR") or Path.home() / ".cache" / "ibet")


def resolve_jars(version: str = KAFKA_VERSION) -> Path:
    """The folder of the broker's jars, resolving them with Maven the first time."""
    libs = cache_dir() / f"kafka-{version}" / "libs"
    marker = libs / ".complete"
    if marker.exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaBrokerUnavailable("Maven (mvn) is not installed: run the README's set-up (make test) first")
    tmp = libs.with_name("libs.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    cmd = [mvn, "-q", "-B", "-f", str(POM), f"-Dkafka.version={version}", "dependency:copy-dependencies",
           f"-DoutputDirectory={tmp}", "-DincludeScope=runtime"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise KafkaBrokerUnavailable(f"Maven could not resolve Kafka {version}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    shutil.rmtree(libs, ignore_errors=True)
    tmp.rename(libs)
    marker.touch()
    return libs


def cluster_id() -> str:
    """A new KRaft cluster id: a random UUID in URL-safe base64, as ``kafka-storage random-uuid``."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def broker_properties(data_dir: Path, port: int, controller_port: int) -> str:
    """server.properties of a one-node KRaft cluster, tuned for quick tests, sized for frames."""
    return f"""
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller_port}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={data_dir}
num.partitions=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
message.max.bytes={MAX_RECORD_BYTES}
replica.fetch.max.bytes={MAX_RECORD_BYTES}
log.segment.bytes=67108864
"""


LOG4J2 = """status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.kafka.additivity = false
logger.kafka.appenderRef.file.ref = FILE
"""


class LocalKafkaBroker:
    """Start with :meth:`start` (or ``with``); ``bootstrap`` is then ``127.0.0.1:<port>``."""

    def __init__(self, workdir: Path, version: str = KAFKA_VERSION, heap_mb: int = 768):
        self.workdir, self.version, self.heap_mb = Path(workdir), version, heap_mb
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 120) -> str:
        java = shutil.which("java")
        if java is None:
            raise KafkaBrokerUnavailable("Java is not installed: Kafka's broker needs Java 17 (see the README's set-up)")
        classpath = f"{resolve_jars(self.version)}/*"
        self.workdir.mkdir(parents=True, exist_ok=True)
        data = self.workdir / "data"
        shutil.rmtree(data, ignore_errors=True)
        self.port, controller_port = free_port(), free_port()
        props = self.workdir / "server.properties"
        props.write_text(broker_properties(data, self.port, controller_port))
        log4j = self.workdir / "log4j2.properties"
        log4j.write_text(LOG4J2.format(log=self.workdir / "broker.log"))
        jvm = [java, f"-Xmx{self.heap_mb}m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
               f"-Dlog4j2.configurationFile={log4j}", "-cp", classpath]
        fmt = subprocess.run(
            [*jvm, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id()}", "-c", str(props)],
            capture_output=True, text=True,
        )
        if fmt.returncode != 0:
            raise KafkaBrokerUnavailable(f"formatting KRaft storage failed:\n{fmt.stdout}{fmt.stderr}")
        out = open(self.workdir / "broker.out", "wb")
        self._process = subprocess.Popen([*jvm, "kafka.Kafka", str(props)], stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self._wait_ready(timeout_s)
        return self.bootstrap

    def _wait_ready(self, timeout_s: float) -> None:
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise KafkaBrokerUnavailable(f"the broker exited with {self._process.returncode}:\n{self.log_tail()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()  # listening yet?
                admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=5000)
                admin.describe_cluster()
                admin.close()
                return
            except (KafkaError, OSError):
                time.sleep(0.5)
        self.stop()
        raise KafkaBrokerUnavailable(f"the broker did not answer within {timeout_s:.0f} s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        text = ""
        for name in ("broker.out", "broker.log"):
            path = self.workdir / name
            if path.exists():
                text += path.read_text(errors="replace")[-chars:]
        return text

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def __enter__(self) -> LocalKafkaBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str]) -> int:
    if argv[:1] == ["resolve"]:
        print(resolve_jars())
        return 0
    if argv[:1] == ["run"]:
        workdir = Path(argv[1]) if len(argv) > 1 else cache_dir() / "broker-run"
        with LocalKafkaBroker(workdir) as broker:
            print(f"Kafka {broker.version} on {broker.bootstrap} (Ctrl-C stops it)", flush=True)
            try:
                signal.pause()
            except KeyboardInterrupt:
                pass
        return 0
    print("usage: python -m ibet_testing.kafka_broker resolve|run [WORKDIR]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
