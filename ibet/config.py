"""Typed configuration: one YAML file plus ``IBET_`` environment overrides, validated at start-up.

Every section forbids unknown keys, so a typo stops the program with the key's name. Nested keys
are overridden from the environment with ``__``: ``IBET_BUS__KIND=kafka``,
``IBET_BUS__KAFKA__BOOTSTRAP_SERVERS='["kafka:9092"]'``. The environment wins over the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, YamlConfigSettingsSource

from ibet.bus.kafka_security import KafkaSecurity, client_security_kwargs
from ibet.detect_config import DetectSettings
from ibet.exceptions import ConfigError
from ibet.forwarded import parse_networks

DEFAULT_CONFIG_PATH = Path("config/ibet.yaml")


def _networks(value: list[str]) -> list[str]:
    parse_networks(value)  # ValueError names the bad entry
    return value


TrustedProxies = Annotated[list[str], AfterValidator(_networks)]
"""IPs or CIDRs of reverse proxies whose X-Forwarded-For is believed (:mod:`ibet.forwarded`)."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaSettings(Section):
    """How to reach the Kafka cluster and how producers and consumers behave on it."""

    bootstrap_servers: list[str] = Field(default=["127.0.0.1:9092"], min_length=1, description="host:port of brokers")
    compression: Literal["lz4", "gzip", "zstd"] | None = Field(
        default="lz4", description="producer compression; lz4 is cheap on JPEG and shrinks JSON"
    )
    linger_ms: int = Field(default=5, ge=0, le=1000, description="producer wait to fill a batch")
    batch_size_bytes: int = Field(default=1024 * 1024, gt=0, description="producer batch size per partition")
    delivery_timeout_ms: int = Field(default=120_000, gt=0, description="give up on a record after this long")
    request_timeout_ms: int = Field(default=30_000, gt=0)
    session_timeout_ms: int = Field(default=10_000, gt=0, description="a silent consumer leaves the group after this")
    heartbeat_interval_ms: int = Field(default=3_000, gt=0)
    max_poll_interval_ms: int = Field(default=300_000, gt=0, description="longest allowed time between polls")
    metadata_max_age_ms: int = Field(default=10_000, gt=0,
                                     description="consumers refresh topic metadata this often (new topics, partitions)")
    stuck_member_s: float = Field(
        default=30.0, gt=0,
        description="a worker that held no partition this long while its group left some unheld joins again as a new member")
    default_partitions: int = Field(default=6, gt=0, description="partitions of topics that ibet creates")
    replication_factor: int = Field(default=1, gt=0, description="3 on a production cluster")
    min_insync_replicas: int = Field(default=1, gt=0, description="2 on a production cluster")
    security: KafkaSecurity = Field(default_factory=KafkaSecurity,
                                    description="TLS and SASL/SCRAM of the Kafka clients (ibet.bus.kafka_security)")

    def security_config(self) -> dict[str, Any]:
        """kafka-python keyword arguments for the transport and authentication (producer, consumer, admin)."""
        return client_security_kwargs(self.security)


class BusSettings(Section):
    kind: Literal["memory", "kafka"] = Field(default="memory", description="memory: one process; kafka: distributed")
    kafka: KafkaSettings = KafkaSettings()


class RunnerSettings(Section):
    """The stage runner's batch loop."""

    batch_max_records: int = Field(default=100, gt=0, description="records consumed per batch")
    poll_timeout_s: float = Field(default=0.5, gt=0, description="wait for records before looping")
    flush_timeout_s: float = Field(default=60.0, gt=0, description="longest wait for outputs to be acknowledged")


class MetricsSettings(Section):
    enabled: bool = True
    host: str = Field(default="0.0.0.0", description="address of the Prometheus /metrics endpoint")
    port: int = Field(default=9400, ge=0, le=65535, description="0 picks a free port")


class DatabaseSettings(Section):
    url: str = Field(
        default="sqlite:///var/ibet.sqlite3",
        description="SQLAlchemy URL: SQLite for the embedded mode, postgresql+psycopg://... when distributed",
    )


class HttpSettings(Section):
    """Bounds on slow clients, for every HTTP server of ibet (push API, alert actions API, console)."""

    header_timeout_s: float = Field(default=10.0, gt=0, description="a request's headers must arrive within this")
    body_timeout_s: float = Field(default=60.0, gt=0, description="... and its body within this (else 408)")
    keep_alive_s: float = Field(default=5.0, gt=0, description="an idle connection between requests closes after this")


class IngestSettings(Section):
    """The drone push API and the pulled camera sources."""

    host: str = Field(default="0.0.0.0", description="push API listen address")
    port: int = Field(default=8080, ge=0, le=65535)
    tls_certfile: Path | None = Field(default=None, description="serve HTTPS with this certificate (PEM)")
    tls_keyfile: Path | None = None
    max_frame_bytes: int = Field(default=8 * 1024 * 1024, gt=0, le=8 * 1024 * 1024,
                                 description="largest JPEG accepted (at most ibet.topics.MAX_FRAME_BYTES)")
    rate_limit_fps: float = Field(default=10.0, gt=0, description="frames per second a device may push, sustained")
    rate_limit_burst: int = Field(default=20, gt=0, description="frames a device may push at once")
    produce_timeout_s: float = Field(default=30.0, gt=0, description="longest wait for Kafka to acknowledge a frame")
    trusted_proxies: TrustedProxies = Field(default=[], description="addresses/CIDRs of proxies (the ingress) whose "
                                       "X-Forwarded-For names the client; empty: the peer is the client")
    auth_max_failures: int = Field(default=10, gt=0, description="failed authentications a client may make ...")
    auth_failure_window_s: float = Field(default=60.0, gt=0, description="... within this window, then 429")
    max_capture_ahead_s: float = Field(default=30.0, ge=0,
                                       description="a pushed frame's capture time may be this far ahead of the ingest clock")
    max_capture_age_s: float = Field(default=600.0, gt=0,
                                     description="... and this far behind it; older frames are refused (422)")
    max_capture_jump_s: float = Field(default=30.0, gt=0,
                                      description="a sensor's capture times may stray this far from its own recent "
                                                  "frames (last capture time + clock time since)")
    feed_lost_after_intervals: float = Field(default=5.0, gt=1,
                                             description="a sensor is dark after this many missed frame intervals")
    feed_lost_min_s: float = Field(default=10.0, gt=0, description="...and at least this many seconds")
    reconnect_initial_s: float = Field(default=0.5, gt=0, description="first wait before reconnecting a stream")
    reconnect_max_s: float = Field(default=30.0, gt=0, description="longest wait between reconnects")
    stream_open_timeout_s: float = Field(default=10.0, gt=0, description="a stream that does not answer in this long fails")
    resize_max_width_px: int | None = Field(default=None, gt=0, description="downscale pulled frames wider than this")
    jpeg_quality: int = Field(default=90, ge=30, le=100, description="quality when pulled frames are re-encoded")
    stream_read_timeout_s: float = Field(default=5.0, gt=0, description="ibet ingest stream: a live stream silent "
                                         "this long is reopened")
    rtsp_transport: Literal["tcp", "udp"] = Field(default="tcp", description="ibet ingest stream: RTP over the "
                                                  "RTSP connection (tcp: through firewalls and NAT) or over UDP ports "
                                                  "(servers without interleaving)")
    klv_match_tolerance_s: float = Field(default=0.002, ge=0, description="a KLV packet this close to a frame's "
                                         "capture time is its telemetry as is")
    klv_max_interpolation_gap_s: float = Field(default=1.0, gt=0, description="frames between two KLV packets at "
                                               "most this far apart get the interpolated telemetry")
    klv_max_age_s: float = Field(default=0.5, ge=0, description="else the nearest packet is used if at most this "
                                 "far from the frame; a frame farther from any is refused as stale")
    klv_max_clock_jump_s: float = Field(default=30.0, gt=0, description="a KLV time stamp (tag 2) this far from "
                                        "the stream's timeline is refused")
    klv_lenient_checksum: bool = Field(default=False, description="use KLV packets whose only fault is the "
                                       "checksum (counted and logged)")


class FuseSettings(Section):
    """Georeferencing errors, the tracker and the border rules of the fuse stage."""

    pixel_sigma_px: float = Field(default=2.0, ge=0, description="detector box-bottom error")
    attitude_sigma_deg: float = Field(default=0.5, ge=0, description="drone: reported attitude error")
    position_sigma_m: float = Field(default=3.0, ge=0, description="drone: reported position error (GPS)")
    fixed_attitude_sigma_deg: float = Field(default=0.05, ge=0, description="fixed camera: surveyed pose angle error")
    fixed_position_sigma_m: float = Field(default=0.5, ge=0, description="fixed camera: surveyed position error")
    reorder_window_s: float = Field(default=0.5, ge=0, description="wait this long for late measurements")
    sensor_live_s: float = Field(default=2.0, gt=0, description="a sector's sensor silent this long no longer holds "
                                 "back the release of its other sensors' measurements (per-sensor watermarks)")
    max_time_ahead_s: float = Field(default=60.0, ge=0,
                                    description="a capture time this far ahead of the fuse clock is dead-lettered")
    max_time_jump_s: float = Field(default=300.0, gt=0,
                                   description="a capture time this far from the sector's event time (its newest "
                                               "plus the clock time since) is dead-lettered, never moving the watermark")
    process_noise_accel_mps2: float = Field(default=1.0, gt=0, description="constant-velocity model noise")
    state_interval_s: float = Field(default=2.0, ge=0, description="save the sectors' state and commit the input "
                                    "at most this often (0: every batch); a replacement worker replays at most "
                                    "this much input, with the same track and event ids")
    confirm_m: int = Field(default=3, gt=0, description="hits needed ...")
    confirm_n: int = Field(default=5, gt=0, description="... in this many scans to confirm a track")
    coast_after_s: float = Field(default=2.0, gt=0, description="confirmed -> coasting without updates")
    delete_after_s: float = Field(default=8.0, gt=0, description="coasting -> deleted")
    approach_distance_m: float = Field(default=50.0, gt=0, description="approach events within this distance")
    group_distance_m: float = Field(default=10.0, ge=0, description="tracks of one class this close that move "
                                    "alike are one group (0: no groups)")
    group_speed_mps: float = Field(default=1.0, gt=0, description="... moving alike: velocities this close")
    hysteresis_m: float = Field(default=3.0, gt=0, description="a crossing needs this far into each country")
    lost_distance_m: float = Field(default=100.0, gt=0, description="a track dropped this close is lost near border")


class SmtpSettings(Section):
    """The mail relay alerts are sent through."""

    host: str = Field(default="127.0.0.1", description="SMTP server")
    port: int = Field(default=25, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = Field(
        default="none", description="starttls: upgrade the connection; tls: implicit TLS (port 465); none: plain")
    username: str | None = None
    password: SecretStr | None = Field(default=None, description="IBET_ALERTS__SMTP__PASSWORD; never in the YAML")
    sender: str = Field(default="ibet-alerts@localhost", description="From: address of alert e-mails")
    timeout_s: float = Field(default=10.0, gt=0)


class AlertSettings(Section):
    """The alert service: rules, escalation, channels, the ack API and signed links."""

    rosters_path: Path | None = Field(default=None, description="duty rosters; default rosters.yaml beside the registry")
    exercise: bool = Field(default=False, description="mark every alert as an exercise on every channel (CAP Exercise)")
    channels: list[Literal["webhook", "email", "cot", "cap"]] = Field(
        default=["webhook", "email", "cot", "cap"], description="channels alerts are delivered on, where a partner has one")
    webhook_secrets: dict[str, SecretStr] = Field(
        default_factory=dict, description="partner id -> HMAC secret of its webhook and CAP endpoints "
        "(IBET_ALERTS__WEBHOOK_SECRETS='{\"usbp\": \"...\"}')")
    smtp: SmtpSettings = SmtpSettings()
    cap_sender: str = Field(default="ibet", pattern=r"^[^\s,<&]+$",
                            description="CAP <sender> of ibet's messages: make it globally unique, e.g. "
                                        "ibet@pacific.ibet.example (the partners' systems key on sender + identifier)")
    cap_expires_s: float = Field(default=3600.0, gt=0, description="a CAP message expires this long after it is sent "
                                                                   "(each new version of the alert renews it)")
    cot_stale_s: float = Field(default=600.0, gt=0, description="a TAK marker goes stale this long after it is sent; "
                                                                "a resolved alert's marker goes stale at once")
    cot_timeout_s: float = Field(default=10.0, gt=0, description="connecting to and sending to a TAK server: a "
                                 "server that does not take a send in this time is retried")
    cot_keepalive_s: float = Field(default=240.0, gt=0, description="an unresolved alert's markers are sent again this "
                                                                    "often (keep it under cot_stale_s)")

    @model_validator(mode="after")
    def _markers_outlive_their_keepalive(self) -> AlertSettings:
        if self.cot_keepalive_s >= self.cot_stale_s:
            raise ValueError(f"cot_keepalive_s ({self.cot_keepalive_s:g} s) must be under cot_stale_s "
                             f"({self.cot_stale_s:g} s), or open alerts' markers go stale between resends")
        return self
    cot_tls_cafile: Path | None = Field(default=None, description="CA of the TAK servers (enables TLS)")
    cot_tls_certfile: Path | None = Field(default=None, description="client certificate for the TAK servers")
    cot_tls_keyfile: Path | None = None
    ack_timeout_s: float = Field(default=300.0, gt=0, description="escalate an alert nobody acknowledged after this")
    max_escalation_level: int = Field(default=3, ge=0, description="stop escalating at this level")
    dedup_window_s: float = Field(default=300.0, gt=0, description="same place, type and direction: one alert")
    group_window_s: float = Field(default=900.0, gt=0, description="events of one track within this update one alert")
    cell_m: float = Field(default=250.0, gt=0, description="grid of the place-based de-duplication")
    delivery_poll_s: float = Field(default=0.5, gt=0, description="how often due deliveries are looked for")
    delivery_lease_s: float = Field(default=60.0, gt=0, description="a claimed delivery is reserved this long")
    delivery_concurrency: int = Field(default=8, ge=1, le=64, description="webhook and CAP deliveries in flight "
                                      "at once per partner (CoT and e-mail: one per TAK server or partner)")
    delivery_batch: int = Field(default=250, ge=1, le=5000, description="most deliveries claimed at once")
    retry_initial_s: float = Field(default=2.0, gt=0, description="first retry after this, doubling, with jitter")
    retry_max_s: float = Field(default=300.0, gt=0, description="longest wait between retries")
    dead_after_s: float = Field(default=86_400.0, gt=0, description="a delivery still failing after this is dead")
    http_timeout_s: float = Field(default=10.0, gt=0, description="webhook / CAP POST timeout")
    api_host: str = Field(default="0.0.0.0", description="address of the acknowledge/resolve API")
    api_port: int = Field(default=8081, ge=0, le=65535, description="0 picks a free port")
    public_url: str | None = Field(default=None, description="base of the signed links in e-mails and webhooks, as "
                                   "partners reach the API (its Ingress); default: the address the API listens on")
    link_secret: SecretStr | None = Field(default=None, description="HMAC key of signed links (IBET_ALERTS__LINK_SECRET)")
    link_ttl_s: float = Field(default=86_400.0, gt=0, description="a signed link (action, alert page, snapshot) "
                              "expires after this")
    evidence_dir: Path | None = Field(default=None, description="where the snapshots behind partners' signed links "
                                      "are read (detect's evidence folder); default: console.evidence_dir")


class ConsoleSettings(Section):
    """How the console listens, keeps sessions, throttles log-ins and retains detections."""

    host: str = Field(default="127.0.0.1", description="listen address of the web console")
    port: int = Field(default=8090, ge=0, le=65535, description="0 picks a free port")
    cookie_secure: bool = Field(default=True, description="session cookie only over HTTPS; false for plain-HTTP tests")
    session_idle_s: float = Field(default=8 * 3600.0, gt=0, description="a session unused this long ends")
    session_max_s: float = Field(default=24 * 3600.0, gt=0, description="a session ends this long after log-in")
    login_max_failures: int = Field(default=5, gt=0,
                                    description="failed log-ins of one account within login_window_s that lock it ...")
    login_lockout_s: float = Field(default=60.0, gt=0,
                                   description="... for this long, doubled for each further failure (at most "
                                               "login_window_s); then its correct password logs in again")
    login_address_max_failures: int = Field(default=20, gt=0,
                                            description="failed log-ins from one client address within login_window_s, "
                                                        "then 429 for every account from there until they age out")
    login_window_s: float = Field(default=900.0, gt=0, description="how long a failed log-in counts")
    trusted_proxies: TrustedProxies = Field(default_factory=list,
                                       description="IPs or CIDRs of reverse proxies (the Ingress) whose X-Forwarded-For "
                                                   "names the client; empty: the peer address is the client's")
    retention_days: float = Field(default=30.0, gt=0,
                                  description="detections and evidence not linked to an alert or case are purged after this")
    evidence_dir: Path = Field(default=Path("var/evidence"), description="root that evidence references are relative to")
    live_poll_s: float = Field(default=0.5, gt=0, description="how often the live stream looks for changes")
    alert_list_limit: int = Field(default=200, gt=0, description="most recent alerts shown on the operator list")


class IbetConfig(BaseSettings):
    """The whole configuration of one ibet process."""

    model_config = SettingsConfigDict(env_prefix="IBET_", env_nested_delimiter="__", extra="forbid", frozen=True)

    registry_path: Path | None = Field(
        default=None,
        description="sectors, sensors, partners; relative to the config file's folder (default: registry.yaml "
        "beside it, or config/registry.yaml without a config file)",
    )
    ports_of_entry_path: Path | None = Field(
        default=None,
        description="ports of entry (GeoJSON polygons where crossing is lawful); relative like registry_path "
        "(default: ports_of_entry.geojson beside it)",
    )
    border_path: Path | None = Field(
        default=None,
        description="the border line (LineString features: GeoJSON, Shapefile or GeoPackage, any CRS; "
        "properties version and accuracy_m), e.g. the International Boundary Commission's, recorded by "
        "`ibet border import`; relative like registry_path (default: the shipped Natural Earth line, "
        "off the surveyed boundary by up to ~1.1 km: demos and exercises only)",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    bus: BusSettings = BusSettings()
    runner: RunnerSettings = RunnerSettings()
    metrics: MetricsSettings = MetricsSettings()
    database: DatabaseSettings = DatabaseSettings()
    http: HttpSettings = HttpSettings()
    ingest: IngestSettings = IngestSettings()
    fuse: FuseSettings = FuseSettings()
    detect: DetectSettings = DetectSettings()
    alerts: AlertSettings = AlertSettings()
    console: ConsoleSettings = ConsoleSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Precedence: explicit arguments, then the environment, then the YAML file (if any).
        sources = [init_settings, env_settings]
        if settings_cls.model_config.get("yaml_file"):
            sources.append(YamlConfigSettingsSource(settings_cls))
        return tuple(sources)

    def registry_file(self) -> Path:
        """Where the registry is; ``load_config`` has made it absolute or cwd-relative."""
        return self.registry_path or Path("config/registry.yaml")

    def rosters_file(self) -> Path:
        """Where the duty rosters are: as configured, else beside the registry."""
        return self.alerts.rosters_path or self.registry_file().with_name("rosters.yaml")

    def ports_of_entry_file(self) -> Path:
        """Where the ports of entry are: as configured, else beside the registry."""
        return self.ports_of_entry_path or self.registry_file().with_name("ports_of_entry.geojson")


def load_config(path: Path | None = None, **overrides: Any) -> IbetConfig:
    """Load ``path`` (YAML) with environment overrides; raise ConfigError naming the bad key.

    Without ``path``, ``$IBET_CONFIG`` or ``config/ibet.yaml`` is used where it exists, else the
    defaults. A relative ``registry_path`` is taken relative to the config file's folder.
    """
    if path is None:
        env_path = os.environ.get("IBET_CONFIG")
        path = Path(env_path) if env_path else (DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.exists() else None)
    if path is not None and not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    settings_cls = IbetConfig
    if path is not None:  # the same model, told which YAML file to read
        config_dict = SettingsConfigDict(**{**IbetConfig.model_config, "yaml_file": path})
        settings_cls = type("IbetConfigFromFile", (IbetConfig,), {"model_config": config_dict})
    try:
        config = settings_cls(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path)) from None
    except (OSError, ValueError, yaml.YAMLError) as exc:  # unreadable file or YAML syntax error
        raise ConfigError(f"{path}: cannot read configuration: {exc}") from None
    if path is not None:  # relative data paths are relative to the config file's folder
        registry = config.registry_path or Path("registry.yaml")
        ports, border = config.ports_of_entry_path, config.border_path
        config = config.model_copy(update={
            "registry_path": registry if registry.is_absolute() else path.parent / registry,
            "ports_of_entry_path": ports if ports is None or ports.is_absolute() else path.parent / ports,
            "border_path": border if border is None or border.is_absolute() else path.parent / border,
        })
        rosters = config.alerts.rosters_path
        if rosters is not None and not rosters.is_absolute():
            config = config.model_copy(
                update={"alerts": config.alerts.model_copy(update={"rosters_path": path.parent / rosters})})
    return config


def _describe(exc: ValidationError, path: Path | None) -> str:
    where = str(path) if path else "configuration"
    lines = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        env_name = "IBET_" + "__".join(str(p).upper() for p in err["loc"])
        lines.append(f"{where}: {key}: {err['msg']} (or environment {env_name})")
    return "invalid configuration:\n  " + "\n  ".join(lines)
