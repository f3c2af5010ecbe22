"""How a Kafka client authenticates and encrypts: TLS, SASL/SCRAM (Strimzi's KafkaUser), or nothing.

One typed section, ``bus.kafka.security``, mapped to the keyword arguments that kafka-python's
KafkaProducer, KafkaConsumer and KafkaAdminClient all take. On Kubernetes the password is a file
(the KafkaUser's Secret mounted into the pod) and the CA the Strimzi cluster CA:

    >>> security = KafkaSecurity(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
    ...                          username="ibet-detect", password_file="/var/run/ibet/kafka-user/password",
    ...                          ssl_cafile="/var/run/ibet/kafka-ca/ca.crt")
    >>> client_security_kwargs(security)["sasl_plain_username"]  # doctest: +SKIP
    'ibet-detect'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from ibet.exceptions import ConfigError

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]


class KafkaSecurity(BaseModel):
    """Transport security and authentication of the Kafka clients (``bus.kafka.security``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    security_protocol: SecurityProtocol = Field(
        default="PLAINTEXT", description="PLAINTEXT, SSL (TLS), SASL_PLAINTEXT or SASL_SSL (SASL over TLS)")
    sasl_mechanism: SaslMechanism | None = Field(
        default=None, description="for SASL_*: SCRAM-SHA-512 (Strimzi's scram-sha-512 users), SCRAM-SHA-256 or PLAIN")
    username: str | None = Field(default=None, min_length=1, description="SASL user (the KafkaUser's name)")
    password: SecretStr | None = Field(
        default=None, description="SASL password; better from the environment (IBET_BUS__KAFKA__SECURITY__PASSWORD)")
    password_file: Path | None = Field(
        default=None, description="file holding the SASL password (the KafkaUser's Secret, key 'password')")
    ssl_cafile: Path | None = Field(default=None, description="CA bundle (PEM) the brokers' certificates are checked against")
    ssl_certfile: Path | None = Field(default=None, description="client certificate (PEM) for mutual TLS")
    ssl_keyfile: Path | None = Field(default=None, description="the client certificate's private key (PEM)")
    ssl_check_hostname: bool = Field(default=True, description="check that the broker's certificate names its host")

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @model_validator(mode="after")
    def _consistent(self) -> KafkaSecurity:
        if self.uses_sasl:
            missing = [name for name in ("sasl_mechanism", "username") if getattr(self, name) is None]
            if missing:
                raise ValueError(f"security_protocol {self.security_protocol} needs {' and '.join(missing)}")
            if (self.password is None) == (self.password_file is None):
                raise ValueError(f"security_protocol {self.security_protocol} needs exactly one of password and "
                                 "password_file")
        else:
            given = [n for n in ("sasl_mechanism", "username", "password", "password_file") if getattr(self, n) is not None]
            if given:
                raise ValueError(f"{', '.join(given)} only apply to SASL_PLAINTEXT or SASL_SSL, "
                                 f"not to {self.security_protocol}")
        tls_files = [n for n in ("ssl_cafile", "ssl_certfile", "ssl_keyfile") if getattr(self, n) is not None]
        if tls_files and not self.uses_tls:
            raise ValueError(f"{', '.join(tls_files)} only apply to SSL or SASL_SSL, not to {self.security_protocol}")
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("ssl_certfile and ssl_keyfile go together: set both for mutual TLS, or neither")
        return self


def read_password(security: KafkaSecurity) -> str:
    """The SASL password: as given, or the first line of ``password_file`` (ConfigError if unreadable or empty)."""
    if security.password is not None:
        return security.password.get_secret_value()
    path = security.password_file
    assert path is not None  # the model requires one of the two for SASL
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"bus.kafka.security.password_file: cannot read {path}: {exc.strerror or exc}") from None
    password = text.strip("\r\n")
    if not password:
        raise ConfigError(f"bus.kafka.security.password_file: {path} is empty")
    return password


def _existing(path: Path | None, key: str) -> str | None:
    if path is None:
        return None
    if not path.is_file():
        raise ConfigError(f"bus.kafka.security.{key}: {path} does not exist")
    return str(path)


def client_security_kwargs(security: KafkaSecurity) -> dict[str, Any]:
    """kafka-python keyword arguments for ``security``, the same for KafkaProducer, KafkaConsumer
    and KafkaAdminClient; empty for PLAINTEXT. Reads the password file and checks the TLS files now,
    so a missing Secret stops the program at start-up with the file's name (ConfigError)."""
    if security.security_protocol == "PLAINTEXT":
        return {}
    kwargs: dict[str, Any] = {"security_protocol": security.security_protocol}
    if security.uses_tls:
        kwargs |= {
            "ssl_check_hostname": security.ssl_check_hostname,
            "ssl_cafile": _existing(security.ssl_cafile, "ssl_cafile"),
            "ssl_certfile": _existing(security.ssl_certfile, "ssl_certfile"),
            "ssl_keyfile": _existing(security.ssl_keyfile, "ssl_keyfile"),
        }
    if security.uses_sasl:
        kwargs |= {
            "sasl_mechanism": security.sasl_mechanism,
            "sasl_plain_username": security.username,
            "sasl_plain_password": read_password(security),
        }
    return kwargs
