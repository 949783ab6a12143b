"""Settings shared by every service. Each service subclasses `ServiceSettings` once, with its own env prefix."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

GRPC_PORT = 8081
METRICS_PORT = 8082


class KafkaSettings(BaseSettings):
    """Kafka connection, read from VISPOD_KAFKA_* by every service."""

    model_config = SettingsConfigDict(env_prefix="VISPOD_KAFKA_", extra="ignore")

    bootstrap: str = "127.0.0.1:9092"
    topic_prefix: str = "vispod"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    # exactly_once: outputs and input offsets commit in one Kafka transaction (no duplicates after
    # a crash). at_least_once: outputs are flushed, then offsets committed.
    delivery: Literal["exactly_once", "at_least_once"] = "exactly_once"
    # Attempts before a failing event goes to the dead-letter topic.
    max_attempts: int = Field(default=3, ge=1, le=20)
    # Longest a handler may take before the group considers the consumer dead.
    max_poll_interval_ms: int = Field(default=600_000, ge=10_000)
    # How long the group waits for a consumer that went silent (a crashed process) before its partitions go to
    # another member; a restarted process gets them back only then (`vispod up` uses 10 s).
    session_timeout_ms: int = Field(default=45_000, ge=6_000, le=300_000)
    # Events fetched (and handled concurrently) per poll; bounds work in flight (backpressure).
    max_poll_records: int = Field(default=500, ge=1)
    # How long the broker may hold an empty fetch; low values cut end-to-end latency at low rates.
    fetch_max_wait_ms: int = Field(default=50, ge=0, le=5000)

    def client_config(self) -> dict[str, object]:
        """Connection options shared by kafka-python producers, consumers and admin clients."""
        cfg: dict[str, object] = {
            "bootstrap_servers": self.bootstrap.split(","),
            "security_protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            cfg["sasl_mechanism"] = self.sasl_mechanism
            cfg["sasl_plain_username"] = self.sasl_username
            cfg["sasl_plain_password"] = self.sasl_password.get_secret_value() if self.sasl_password else None
        if self.ssl_cafile:
            cfg["ssl_cafile"] = str(self.ssl_cafile)
        return cfg


class ImageAccessSettings(BaseSettings):
    """Where images may come from and how big they may be; read from VISPOD_IMAGES_*."""

    model_config = SettingsConfigDict(env_prefix="VISPOD_IMAGES_", extra="ignore")

    # file:// URIs must lie beneath one of these folders (opened beneath them; no symlink leads out).
    file_roots: list[Path] = Field(default_factory=list)
    # http(s):// URIs only to these host names (exact match); empty means no remote fetches.
    allowed_hosts: list[str] = Field(default_factory=list)
    # Loopback, link-local and private addresses are refused unless inside one of these CIDRs
    # (e.g. ["10.0.0.0/8"] for an in-cluster image store).
    allowed_networks: list[str] = Field(default_factory=list)
    # s3:// URIs only to these buckets; empty means no s3 reads.
    s3_buckets: list[str] = Field(default_factory=list)
    allow_plain_http: bool = False
    max_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    # Decoded pixels (declared sizes, checked before decoding): per image (25 MP holds a 24 MP camera's
    # 6000x4000; RGB costs 3 bytes a pixel) and over all the images of one request.
    max_pixels: int = Field(default=25_000_000, ge=1)
    max_request_pixels: int = Field(default=100_000_000, ge=1)
    # One deadline for a whole http(s) fetch: resolving, connecting and every read.
    fetch_timeout_s: float = Field(default=10.0, gt=0)
    allowed_formats: list[str] = Field(default_factory=lambda: ["JPEG", "PNG", "WEBP", "GIF", "BMP"])
    max_images: int = Field(default=32, ge=1)

    @field_validator("file_roots", mode="after")
    @classmethod
    def _resolve_roots(cls, roots: list[Path]) -> list[Path]:
        return [Path(r).expanduser().resolve() for r in roots]

    @field_validator("allowed_networks", mode="after")
    @classmethod
    def _check_networks(cls, networks: list[str]) -> list[str]:
        for net in networks:
            ipaddress.ip_network(net, strict=False)  # ValueError names the bad one
        return networks


class GrpcTlsSettings(BaseSettings):
    """TLS of gRPC servers and clients, read from VISPOD_GRPC_TLS_*; plaintext when no certificate is given.

    A server with `cert_file` + `key_file` serves TLS; with `ca_file` too it requires client certificates
    signed by that CA (mutual TLS). Admin RPCs (e.g. GeneratorService.UpdateAdapter) then need a client
    whose certificate names (CN or SAN) one of `admin_identities`. Without mutual TLS nobody can be
    identified: admin RPCs are refused (PERMISSION_DENIED) unless `admin_open_without_mtls` is set, an
    explicit opt-in for local development that every server logs at start-up as a warning. A client
    trusts `ca_file` and presents `cert_file`/`key_file` when given.
    """

    model_config = SettingsConfigDict(env_prefix="VISPOD_GRPC_TLS_", extra="ignore")

    cert_file: Path | None = None
    key_file: Path | None = None
    ca_file: Path | None = None
    # Servers with `ca_file`: refuse clients without a certificate (off: TLS for everyone, identities
    # only for those who present one).
    require_client_cert: bool = True
    admin_identities: list[str] = Field(default_factory=list)
    admin_open_without_mtls: bool = False

    @model_validator(mode="after")
    def _pairs(self) -> GrpcTlsSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self

    @property
    def enabled(self) -> bool:
        return self.cert_file is not None

    @property
    def mutual(self) -> bool:
        """Clients are verified against `ca_file`, so their certificate names can be trusted."""
        return self.enabled and self.ca_file is not None


class DatasetSettings(BaseSettings):
    """Where the shared datasets are (never bundled with vispod): VISPOD_DATASETS_ROOT, by default a mount at
    /var/lib/vispod/datasets. In a checkout the developer kit and the tests point it at `shared/datasets`
    beside the checkout (vispod.devkit.checkout)."""

    model_config = SettingsConfigDict(env_prefix="VISPOD_DATASETS_", extra="ignore")

    root: Path = Path("/var/lib/vispod/datasets")

    @property
    def vist_podcast_50(self) -> Path:
        """51 real VIST stories with both of the paper's model transcripts (FACTS.md)."""
        return self.root / "vist-podcast-50"


def bind_host() -> str:
    return os.environ.get("VISPOD_BIND_HOST", "127.0.0.1")


class ServiceSettings(BaseSettings):
    """Base of each service's one settings class; subclasses set `env_prefix`, e.g. VISPOD_METRICS_."""

    model_config = SettingsConfigDict(extra="ignore")

    service_name: str = "vispod"
    # Listening addresses: loopback unless VISPOD_BIND_HOST (set to 0.0.0.0 by the image) says otherwise.
    grpc_host: str = Field(default_factory=bind_host)
    grpc_port: int = Field(default=GRPC_PORT, ge=0, le=65535)
    metrics_host: str = Field(default_factory=bind_host)
    metrics_port: int = Field(default=METRICS_PORT, ge=0, le=65535)
    grpc_max_workers: int = Field(default=8, ge=1)
    # Seconds in-flight RPCs get to finish on SIGTERM.
    shutdown_grace_s: float = Field(default=10.0, ge=0)
    # Seconds between NOT_SERVING and closing the listener, so probes and load balancers notice first.
    shutdown_drain_s: float = Field(default=1.0, ge=0)
    log_level: str = "INFO"
    # Run the Kafka consumer (off for gRPC-only replicas).
    consume: bool = True
    artifact_root: Path = Path("artifacts")
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    images: ImageAccessSettings = Field(default_factory=ImageAccessSettings)
    grpc_tls: GrpcTlsSettings = Field(default_factory=GrpcTlsSettings)


class SettingsError(SystemExit):
    """Raised at start-up with a message naming every bad or missing setting."""


T = TypeVar("T", bound=BaseSettings)


def load_settings(cls: type[T], **overrides: object) -> T:
    """Instantiate a settings class, turning validation errors into one readable start-up error."""
    try:
        return cls(**overrides)
    except ValidationError as exc:
        prefix = cls.model_config.get("env_prefix", "")
        lines = [f"invalid settings for {cls.__name__}:"]
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"])
            lines.append(f"  {prefix}{name.upper()}: {err['msg']}")
        raise SettingsError("\n".join(lines)) from None
