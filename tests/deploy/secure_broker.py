"""A real Kafka broker secured as Strimzi's ibet-kafka is: SASL_SSL with SCRAM-SHA-512 users, TLS
from a CA of its own, ACLs enforced (StandardAuthorizer). For the Kafka client security tests.

Same jars as the suite's broker (ibet_testing.kafka_broker); the certificates are made with the
openssl command; the SCRAM users are created when the KRaft storage is formatted. A plaintext
listener on loopback is the super user's, to create topics and ACLs as the operators would.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from ibet.topics import MAX_RECORD_BYTES
from ibet_testing.kafka_broker import LOG4J2, KafkaBrokerUnavailable, cluster_id, free_port, resolve_jars


def make_tls(folder: Path) -> tuple[Path, Path]:
    """A CA and a broker certificate for 127.0.0.1; returns (CA certificate, broker key+chain PEM)."""
    if shutil.which("openssl") is None:
        raise KafkaBrokerUnavailable("the openssl command is needed to make the test certificates")
    folder.mkdir(parents=True, exist_ok=True)

    def openssl(*args: str) -> None:
        done = subprocess.run(["openssl", *args], cwd=folder, capture_output=True, text=True)
        if done.returncode != 0:
            raise KafkaBrokerUnavailable(f"openssl {args[0]} failed: {done.stderr}")

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=ibet-test-cluster-ca")
    (folder / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "server.crt", "-days", "2", "-extfile", "server.ext")
    keystore = folder / "server.pem"  # Kafka's PEM keystore: the (unencrypted PKCS#8) key, then the chain
    keystore.write_text((folder / "server.key").read_text() + (folder / "server.crt").read_text())
    return folder / "ca.crt", keystore


def properties(data: Path, keystore: Path, port: int, internal_port: int, controller_port: int) -> str:
    return f"""
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{controller_port}
listeners=SASL_SSL://127.0.0.1:{port},INTERNAL://127.0.0.1:{internal_port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners=SASL_SSL://127.0.0.1:{port},INTERNAL://127.0.0.1:{internal_port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=INTERNAL
listener.security.protocol.map=SASL_SSL:SASL_SSL,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PEM
ssl.keystore.location={keystore}
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:ANONYMOUS
allow.everyone.if.no.acl.found=false
log.dirs={data}
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=2
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
message.max.bytes={MAX_RECORD_BYTES}
"""


class SecureKafkaBroker:
    """``start()`` it with SCRAM users ``{name: password}``; ``bootstrap`` is the SASL_SSL listener,
    ``internal`` the super user's plaintext one, ``ca`` the CA certificate clients trust."""

    def __init__(self, workdir: Path, users: dict[str, str]):
        self.workdir, self.users = Path(workdir), users
        self.port = self.internal_port = 0
        self.ca = self.workdir / "tls" / "ca.crt"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def internal(self) -> str:
        return f"127.0.0.1:{self.internal_port}"

    def start(self, timeout_s: float = 120) -> None:
        java = shutil.which("java")
        if java is None:
            raise KafkaBrokerUnavailable("Java is not installed")
        classpath = f"{resolve_jars()}/*"
        self.ca, keystore = make_tls(self.workdir / "tls")
        self.port, self.internal_port, controller_port = free_port(), free_port(), free_port()
        props = self.workdir / "server.properties"
        props.write_text(properties(self.workdir / "data", keystore, self.port, self.internal_port, controller_port))
        log4j = self.workdir / "log4j2.properties"
        log4j.write_text(LOG4J2.format(log=self.workdir / "broker.log"))
        jvm = [java, "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", f"-Dlog4j2.configurationFile={log4j}",
               "-cp", classpath]
        scram = [arg for name, password in self.users.items()
                 for arg in ("--add-scram", f"SCRAM-SHA-512=[name={name},password={password}]")]
        fmt = subprocess.run([*jvm, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id()}", "-c", str(props),
                              *scram], capture_output=True, text=True)
        if fmt.returncode != 0:
            raise KafkaBrokerUnavailable(f"formatting KRaft storage failed:\n{fmt.stdout}{fmt.stderr}")
        out = open(self.workdir / "broker.out", "wb")
        self._process = subprocess.Popen([*jvm, "kafka.Kafka", str(props)], stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self._wait_ready(timeout_s)

    def _wait_ready(self, timeout_s: float) -> None:
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise KafkaBrokerUnavailable(f"the broker exited with {self._process.returncode}:\n{self.log_tail()}")
            try:
                socket.create_connection(("127.0.0.1", self.internal_port), timeout=1).close()
                admin = KafkaAdminClient(bootstrap_servers=self.internal, request_timeout_ms=5000)
                admin.describe_cluster()
                admin.close()
                return
            except (KafkaError, OSError):
                time.sleep(0.5)
        self.stop()
        raise KafkaBrokerUnavailable(f"the broker did not answer within {timeout_s:.0f} s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        return "".join((self.workdir / n).read_text(errors="replace")[-chars:]
                       for n in ("broker.out", "broker.log") if (self.workdir / n).exists())

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
