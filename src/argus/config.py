"""Settings from environment variables (12-factor), validated once at start-up.

Every variable is ``ARGUS_<FIELD>``; nested values (per-watch-list thresholds) are JSON. A bad value stops the
process before it touches a camera or a broker, with one line per problem naming the variable, what was expected
and what was given. Secrets are ``SecretStr``: they never appear in logs, reprs or ``argus config`` output.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field, PrivateAttr, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from argus.errors import ConfigError
from argus_data import model_repository as packaged_model_repository

if TYPE_CHECKING:
    from argus.bus.kafka import KafkaSecurity
    from argus.decisions import Thresholds

#: Shortest webhook signing key accepted: a short key can be brute-forced offline from one captured request.
MIN_WEBHOOK_SECRET_CHARS = 16


class BusKind(str, Enum):
    memory = "memory"
    kafka = "kafka"


class BackendKind(str, Enum):
    onnxruntime = "onnxruntime"
    triton = "triton"


class StoreKind(str, Enum):
    sqlite = "sqlite"
    mongodb = "mongodb"


class GalleryKind(str, Enum):
    faiss = "faiss"
    memory = "memory"


class DetectorKind(str, Enum):
    mtcnn = "mtcnn"
    blazeface = "blazeface"
    centerface = "centerface"


class Settings(BaseSettings):
    """All of Argus's knobs. Defaults are the embedded laptop mode; Kubernetes sets the server ones."""

    model_config = SettingsConfigDict(env_prefix="ARGUS_", frozen=True, extra="forbid", case_sensitive=False)
    _webhook_key: SecretStr | None = PrivateAttr(default=None)  # resolved by _webhook_settings
    _kafka_password: SecretStr | None = PrivateAttr(default=None)  # resolved by _transport_security
    _mongo_uri: SecretStr | None = PrivateAttr(default=None)  # resolved by _transport_security

    # where things live
    data_dir: Path = Field(default=Path(".argus"), description="Local state: gallery, embedded store, logs.")
    cameras_file: Path | None = Field(default=None, description="Camera registry (TOML): id, name, url, fps, location.")
    model_repository: Path = Field(default_factory=packaged_model_repository,
                                   description="Triton-layout model repository.")

    # seams
    bus: BusKind = Field(default=BusKind.memory, description="Message bus: memory (one process) or kafka.")
    kafka_bootstrap: str = Field(default="127.0.0.1:9092", description="Kafka bootstrap servers, comma-separated.")
    kafka_partitions: int = Field(default=6, ge=1, le=1024, description="Partitions per topic when Argus creates it.")
    kafka_security_protocol: str = Field(
        default="PLAINTEXT", pattern="^(PLAINTEXT|SSL|SASL_SSL|SASL_PLAINTEXT)$",
        description="Kafka link: PLAINTEXT (dev), SSL, SASL_SSL (production: TLS + SCRAM), SASL_PLAINTEXT.")
    kafka_sasl_mechanism: str = Field(
        default="SCRAM-SHA-512", pattern="^(SCRAM-SHA-512|SCRAM-SHA-256|PLAIN)$", description="Kafka SASL mechanism.")
    kafka_sasl_username: str | None = Field(default=None, description="Kafka SASL user (SASL_SSL).")
    kafka_sasl_password: SecretStr | None = Field(
        default=None, description="Kafka SASL password (secret; or ARGUS_KAFKA_SASL_PASSWORD_FILE).")
    kafka_sasl_password_file: Path | None = Field(
        default=None, description="File holding the Kafka SASL password (a mounted Secret), read at start-up.")
    kafka_ssl_cafile: Path | None = Field(
        default=None, description="PEM CA bundle the brokers' certificates are checked against (default: system).")
    kafka_allow_sasl_plaintext: bool = Field(
        default=False, description="Permit SASL_PLAINTEXT (SASL without TLS); refused unless set.")
    backend: BackendKind = Field(default=BackendKind.onnxruntime, description="Inference: in-process ORT or Triton.")
    triton_url: str = Field(default="127.0.0.1:8001", description="Triton gRPC endpoint host:port.")
    triton_timeout_s: float = Field(default=10.0, gt=0, description="Per-request Triton deadline.")
    triton_ssl: bool = Field(default=False, description="Triton gRPC over TLS.")
    triton_ssl_root_certs: Path | None = Field(
        default=None, description="PEM CA bundle Triton's gRPC certificate is checked against (default: system).")
    store: StoreKind = Field(default=StoreKind.sqlite, description="Event store: sqlite (embedded file) or mongodb.")
    mongo_uri: SecretStr = Field(default=SecretStr("mongodb://127.0.0.1:27017"), description="MongoDB URI (secret).")
    mongo_uri_file: Path | None = Field(
        default=None, description="File holding the MongoDB URI with its credentials (a mounted Secret).")
    mongo_database: str = Field(default="argus", description="MongoDB database name.")
    retention_events_days: int = Field(
        default=90, ge=1, description="Sighting history kept, days (MongoDB TTL; SQLite purged hourly).")
    retention_alerts_days: int = Field(default=365, ge=1, description="Alerts and their triage state kept, days.")
    retention_crops_days: int = Field(
        default=30, ge=1, description="Face crops kept, days (shorter than the events they belong to).")
    retention_audit_days: int = Field(
        default=0, ge=0, description="Audit trail kept, days; 0 = forever (an auditor decides, not a default).")
    gallery: GalleryKind = Field(
        default=GalleryKind.faiss, description="Watch-list gallery: faiss (persisted) or memory (numpy, one process)."
    )
    gallery_path: Path | None = Field(default=None, description="FAISS gallery directory (default data_dir/gallery).")
    gallery_sync: str = Field(
        default="file", pattern="^(file|bus)$",
        description="How replicas get gallery changes: file (one shared directory) or bus (topic argus.gallery.v1).")
    gallery_index: str = Field(
        default="flat", pattern="^(flat|hnsw|ivf)$", description="flat (exact), hnsw or ivf (approximate)."
    )
    faiss_threads: int = Field(
        default=1, ge=0, le=256, description="FAISS OpenMP threads (0 = all cores; 1 is fastest on shared nodes)."
    )

    # inference
    detector: DetectorKind = Field(default=DetectorKind.mtcnn, description="Face detector model family.")
    min_face_size: int = Field(default=40, ge=12, le=1000, description="Smallest face searched for, pixels.")
    det_threshold: float = Field(default=0.95, gt=0, lt=1, description="Final detector score to keep a face.")
    inference_batch_max: int = Field(
        default=8, ge=1, le=256, description="Frames per inference micro-batch (Triton's dynamic batcher joins them)."
    )
    matcher_batch_max: int = Field(
        default=32, ge=1, le=4096, description="Face messages per matcher micro-batch (one FAISS search each)."
    )
    alerter_batch_max: int = Field(
        default=64, ge=1, le=4096, description="Match messages per alerter micro-batch (one store write each)."
    )
    batch_wait_ms: int = Field(default=20, ge=0, le=5000, description="Max wait to fill a micro-batch (every stage).")
    track_max_age_s: float = Field(
        default=2.0, gt=0, le=600, description="Capture seconds without a detection before a face track ends."
    )
    track_max_embeddings: int = Field(
        default=8, ge=1, le=64, description="Faces embedded per track at most (the best ones; the rest are tracked)."
    )
    emotion_tta: str = Field(
        default="embedded", pattern="^(off|embedded|all)$",
        description="Test-time augmentation for emotion (paper 003): off, embedded (faces that reach the matcher) "
                    "or all faces.")
    emotion_tta_views: int = Field(
        default=10, ge=1, le=10, description="Augmented views averaged per face when TTA is on (paper 003: 10).")
    emotion_rules: bool = Field(
        default=True, description="ECRL (paper 002): FaceMesh geometry on embedded faces confirms or corrects the "
                                  "track's emotion.")
    ort_threads: int = Field(default=0, ge=0, le=256, description="ONNX Runtime intra-op threads (0 = all cores).")

    # matching and alerting
    match_threshold: float = Field(default=0.0, ge=-1, le=1, description="Cosine threshold; 0 means model default.")
    watchlist_thresholds: dict[str, float] = Field(
        default_factory=dict, description='Per-watch-list cosine thresholds, JSON: {"vip": 0.8}.'
    )
    camera_thresholds: dict[str, float] = Field(
        default_factory=dict, description='Per-camera cosine thresholds, JSON: {"gate-3": 0.94}; both must hold.'
    )
    identify_min_size: float = Field(
        default=40.0, ge=0, description="Faces smaller than this (px) are tracked but never name anybody."
    )
    identify_min_faces: int = Field(
        default=2, ge=1, le=64, description="Agreeing identification-grade faces a track needs to name a person."
    )
    identify_min_margin: float = Field(
        default=0.03, ge=0, le=2, description="Lead over every other identity (cohort included) to name a person."
    )
    top_k: int = Field(default=5, ge=1, le=100, description="Candidates kept per face as review evidence.")
    min_quality_size: float = Field(default=40.0, ge=0, description="Faces smaller than this (px) are not matched.")
    min_quality_blur: float = Field(default=15.0, ge=0, description="Faces blurrier than this are not matched.")
    cooldown_s: float = Field(default=60.0, ge=0, description="One alert per (person, camera) per window.")
    sinks: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["log", "kafka"],
        description="Alert sinks, comma-separated: log, webhook, kafka (= argus.alerts.v3 on the bus).",
    )
    webhook_url: SecretStr | None = Field(default=None, description="Webhook for alerts (may embed a token).")
    webhook_secret: SecretStr | None = Field(
        default=None, description="HMAC-SHA256 key signing webhook requests (secret; or ARGUS_WEBHOOK_SECRET_FILE)."
    )
    webhook_secret_file: Path | None = Field(
        default=None, description="File holding the webhook key (a mounted Kubernetes Secret), read at start-up."
    )
    store_crops: bool = Field(default=True, description="Keep face crops in event history (evidence).")

    # ingest
    jpeg_quality: int = Field(default=85, ge=10, le=100, description="JPEG quality for frames on the bus.")
    ingest_queue: int = Field(default=16, ge=1, le=100000, description="Frames buffered per camera (drop oldest).")
    motion_gating: bool = Field(
        default=False,
        description="Ingest skips frames in which nothing moved and sends where it moved (argus.motion); "
                    "inference detects there, around open tracks, and on the whole frame of keyframes.")
    motion_keyframe_s: float = Field(
        default=5.0, gt=0, le=3600, description="With motion gating: a full-frame keyframe at least this often per "
                                                "camera (capture s), so a face that stands still is still found.")
    detect_regions: bool = Field(
        default=True, description="Inference detects on a gated frame only in model-sized crops around its motion "
                                  "and the camera's open tracks (off: the whole frame of every published frame).")
    detect_interval: int = Field(
        default=1, ge=1, le=50,
        description="Inference runs the detector on every N-th frame of a camera (keyframes always); the camera's "
                    "tracks carry the frames in between (1: every frame).")
    ingest_files_realtime: bool = Field(
        default=True, description="Pace video files like live cameras (false: as fast as decoding, for replays)."
    )
    ingest_shards: int = Field(
        default=1, ge=1, le=1024, description="Ingest replicas the cameras are split across (StatefulSet replicas)."
    )
    ingest_shard: int | None = Field(
        default=None, ge=0, description="This ingest replica's shard, 0-based (default: the host name's -N suffix)."
    )

    # operator API (services/api)
    api_port: int = Field(default=8080, ge=1, le=65535, description="Operator API port (/api/v1, /docs).")
    api_host: str = Field(default="127.0.0.1", description="Address the API binds (0.0.0.0 in a container).")
    api_oidc_jwks: str | None = Field(
        default=None, description="OIDC: JWKS file path or https URL verifying bearer tokens (unset: API keys only).")
    api_oidc_issuer: str | None = Field(default=None, description="OIDC: expected token issuer (iss).")
    api_oidc_audience: str | None = Field(default=None, description="OIDC: expected token audience (aud).")
    api_oidc_role_claim: str = Field(
        default="argus_role", description="OIDC: claim naming the Argus role (admin, operator, analyst, auditor).")
    api_cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Origins allowed by CORS, comma-separated (empty: CORS off).")
    api_rate_per_s: float = Field(default=20.0, gt=0, le=100000, description="Requests per second per key (refill).")
    api_rate_burst: int = Field(default=60, ge=1, le=100000, description="Requests a key may burst above the rate.")
    api_max_body_mb: float = Field(default=20.0, gt=0, le=1024, description="Largest request body, MiB.")
    api_max_photo_mb: float = Field(default=8.0, gt=0, le=256, description="Largest single uploaded photo, MiB.")
    api_max_photos: int = Field(default=10, ge=1, le=100, description="Photos per enrollment request at most.")
    api_page_max: int = Field(default=500, ge=1, le=10000, description="Largest page a list request may ask for.")
    console_map_image: Path | None = Field(
        default=None, description="Console map: an operator-supplied background image (PNG/JPEG; no map tiles).")
    console_map_refs: list[tuple[float, float, float, float]] = Field(
        default_factory=list,
        description='Console map: two reference points placing that image, JSON [[x, y, lat, lon], [x, y, lat, lon]].')
    camera_health_interval_s: float = Field(
        default=5.0, gt=0, le=3600, description="How often ingest records each camera's health in the store.")

    # operations
    metrics_port: int = Field(default=9100, ge=0, le=65535, description="/metrics, /healthz, /readyz port (0 = off).")
    log_level: str = Field(default="INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$", description="Log level.")

    @field_validator("sinks", "api_cors_origins", mode="before")
    @classmethod
    def _split_sinks(cls, v: Any) -> Any:
        if isinstance(v, str) and not v.lstrip().startswith("["):
            return [s.strip() for s in v.split(",") if s.strip()]
        return v

    @field_validator("sinks")
    @classmethod
    def _known_sinks(cls, v: list[str]) -> list[str]:
        bad = [s for s in v if s not in {"log", "webhook", "kafka"}]
        if bad:
            raise ValueError(f"expected sinks among log, webhook, kafka; got {', '.join(bad)}")
        return v

    @field_validator("watchlist_thresholds", "camera_thresholds")
    @classmethod
    def _thresholds_in_range(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {k: t for k, t in v.items() if not -1.0 <= t <= 1.0}
        if bad:
            raise ValueError(f"expected cosine thresholds in [-1, 1], got {bad}")
        return v

    @model_validator(mode="after")
    def _webhook_settings(self) -> Settings:
        """An enabled webhook needs a URL and a signing key: without the key anybody who learns the URL can post a
        forged alert. The key file is read here, once, so a missing mount stops the alerter at start-up rather
        than at its first alert; it is read only when the webhook sink is on, because the Secret key may be
        absent where no webhook is used."""
        problems = []
        both = self.webhook_secret is not None and self.webhook_secret_file is not None
        if both:
            problems.append("ARGUS_WEBHOOK_SECRET and ARGUS_WEBHOOK_SECRET_FILE: expected one of them, got both")
        if "webhook" in self.sinks:
            if self.webhook_url is None:
                problems.append("sink 'webhook' is enabled but ARGUS_WEBHOOK_URL is not set")
            secret: str | None = None
            source = "ARGUS_WEBHOOK_SECRET"
            if self.webhook_secret is not None:
                secret = self.webhook_secret.get_secret_value()
            elif self.webhook_secret_file is not None:
                source = "ARGUS_WEBHOOK_SECRET_FILE"
                try:
                    secret = self.webhook_secret_file.read_text(encoding="utf-8").rstrip("\r\n")
                except (OSError, UnicodeDecodeError) as e:
                    why = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
                    problems.append(f"ARGUS_WEBHOOK_SECRET_FILE: expected a readable UTF-8 file, got "
                                    f"{str(self.webhook_secret_file)!r} ({why})")
            else:
                problems.append("sink 'webhook' is enabled but neither ARGUS_WEBHOOK_SECRET nor "
                                "ARGUS_WEBHOOK_SECRET_FILE is set: expected a signing key (an unsigned webhook "
                                "can be forged by anybody who learns its URL)")
            if secret is not None and len(secret) < MIN_WEBHOOK_SECRET_CHARS:
                problems.append(f"{source}: expected a key of at least {MIN_WEBHOOK_SECRET_CHARS} characters "
                                f"(e.g. openssl rand -hex 32), got {len(secret)}")
            elif secret is not None and not both:
                self._webhook_key = SecretStr(secret)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _transport_security(self) -> Settings:
        """Refuse the settings that would quietly send credentials or data in the clear, and read the secret files
        now, so a missing Secret mount stops the process at start-up naming the variable, not at its first
        connection. A credential given without the protocol that uses it is refused too: the link would silently
        stay plaintext."""
        problems = []
        proto = self.kafka_security_protocol
        sasl = proto.startswith("SASL_")
        if self.kafka_sasl_password is not None and self.kafka_sasl_password_file is not None:
            problems.append("ARGUS_KAFKA_SASL_PASSWORD and ARGUS_KAFKA_SASL_PASSWORD_FILE: expected one, got both")
        elif self.kafka_sasl_password_file is not None:
            password = _read_secret_file("ARGUS_KAFKA_SASL_PASSWORD_FILE", self.kafka_sasl_password_file, problems)
            self._kafka_password = SecretStr(password) if password is not None else None
        else:
            self._kafka_password = self.kafka_sasl_password
        given = [v for v, on in (("ARGUS_KAFKA_SASL_USERNAME", self.kafka_sasl_username is not None),
                                 ("ARGUS_KAFKA_SASL_PASSWORD", self.kafka_sasl_password is not None),
                                 ("ARGUS_KAFKA_SASL_PASSWORD_FILE", self.kafka_sasl_password_file is not None)) if on]
        if sasl and (not self.kafka_sasl_username or not self._kafka_password
                     or not self._kafka_password.get_secret_value()):
            problems.append(f"ARGUS_KAFKA_SECURITY_PROTOCOL={proto}: expected ARGUS_KAFKA_SASL_USERNAME and a "
                            f"password (ARGUS_KAFKA_SASL_PASSWORD or ARGUS_KAFKA_SASL_PASSWORD_FILE), got "
                            f"{', '.join(given) or 'neither'}")
        if not sasl and given:
            problems.append(f"{', '.join(given)}: set, but ARGUS_KAFKA_SECURITY_PROTOCOL={proto} does not use them: "
                            f"expected SASL_SSL")
        if proto == "SASL_PLAINTEXT" and not self.kafka_allow_sasl_plaintext:
            problems.append("ARGUS_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT: expected SASL_SSL (SASL without TLS sends "
                            "every frame unencrypted, and with PLAIN the password too), or "
                            "ARGUS_KAFKA_ALLOW_SASL_PLAINTEXT=true to accept that")
        if self.kafka_ssl_cafile is not None:
            if proto not in ("SSL", "SASL_SSL"):
                problems.append(f"ARGUS_KAFKA_SSL_CAFILE: set, but ARGUS_KAFKA_SECURITY_PROTOCOL={proto} has no TLS: "
                                f"expected SSL or SASL_SSL")
            _read_secret_file("ARGUS_KAFKA_SSL_CAFILE", self.kafka_ssl_cafile, problems)
        if self.triton_ssl_root_certs is not None:
            if not self.triton_ssl:
                problems.append("ARGUS_TRITON_SSL_ROOT_CERTS: set, but ARGUS_TRITON_SSL is false: expected "
                                "ARGUS_TRITON_SSL=true")
            _read_secret_file("ARGUS_TRITON_SSL_ROOT_CERTS", self.triton_ssl_root_certs, problems)
        if self.mongo_uri_file is not None:
            if "mongo_uri" in self.model_fields_set:
                problems.append("ARGUS_MONGO_URI and ARGUS_MONGO_URI_FILE: expected one, got both")
            uri = _read_secret_file("ARGUS_MONGO_URI_FILE", self.mongo_uri_file, problems)
            if uri is not None and not uri.startswith(("mongodb://", "mongodb+srv://")):
                problems.append("ARGUS_MONGO_URI_FILE: expected a mongodb:// or mongodb+srv:// URI in the file, "
                                "got something else (not shown: it may hold a password)")
            self._mongo_uri = SecretStr(uri) if uri is not None else None
        else:
            self._mongo_uri = self.mongo_uri
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _map_refs(self) -> Settings:
        """The background image needs exactly two distinct reference points to be placed; one without the other
        would draw cameras over a picture they do not belong to."""
        refs = self.console_map_refs
        if (self.console_map_image is None) != (not refs):
            raise ValueError("ARGUS_CONSOLE_MAP_IMAGE and ARGUS_CONSOLE_MAP_REFS: expected both or neither")
        if refs and (len(refs) != 2 or refs[0][:2] == refs[1][:2] or refs[0][2:] == refs[1][2:]):
            raise ValueError(f"ARGUS_CONSOLE_MAP_REFS: expected two distinct [x, y, lat, lon] points, got {refs}")
        return self

    @model_validator(mode="after")
    def _shard_in_range(self) -> Settings:
        if self.ingest_shard is not None and self.ingest_shard >= self.ingest_shards:
            raise ValueError(f"ARGUS_INGEST_SHARD: expected 0..{self.ingest_shards - 1} "
                             f"(ARGUS_INGEST_SHARDS={self.ingest_shards}), got {self.ingest_shard}")
        return self

    def ingest_shard_index(self, hostname: str | None = None) -> int:
        """This replica's shard: ARGUS_INGEST_SHARD, else the ordinal a StatefulSet puts at the end of the pod's
        host name (``argus-ingest-2`` → 2). Guessing would make two replicas read the same cameras: refuse."""
        if self.ingest_shards == 1:
            return 0
        if self.ingest_shard is not None:
            return self.ingest_shard
        import re
        import socket

        host = hostname if hostname is not None else socket.gethostname()
        m = re.search(r"-(\d+)$", host)
        if m is None or int(m.group(1)) >= self.ingest_shards:
            raise ConfigError(f"ARGUS_INGEST_SHARDS={self.ingest_shards} but this replica's shard is unknown: expected "
                              f"ARGUS_INGEST_SHARD or a host name ending in -0..-{self.ingest_shards - 1} "
                              f"(a StatefulSet pod), got host name {host!r}")
        return int(m.group(1))

    def thresholds(self) -> Thresholds:
        """The match thresholds in force: per watch-list, else ARGUS_MATCH_THRESHOLD, else the measured default."""
        from argus.decisions import Thresholds
        from argus.faces.embedder import DEFAULT_MATCH_THRESHOLD

        return Thresholds.from_settings(match_threshold=self.match_threshold,
                                        watchlist_thresholds=self.watchlist_thresholds,
                                        model_default=DEFAULT_MATCH_THRESHOLD)

    def batch_max_for(self, stage: str) -> int:
        """The micro-batch cap of a consuming stage (``ARGUS_<STAGE>_BATCH_MAX``)."""
        caps = {"inference": self.inference_batch_max, "matcher": self.matcher_batch_max,
                "alerter": self.alerter_batch_max}
        if stage not in caps:
            raise ConfigError(f"batch size: expected a consuming stage ({', '.join(caps)}), got {stage!r}")
        return caps[stage]

    @property
    def webhook_signing_secret(self) -> SecretStr | None:
        """The key the webhook sink signs with (from ARGUS_WEBHOOK_SECRET or the file read at start-up); None
        unless the webhook sink is enabled."""
        return self._webhook_key

    def kafka_security(self) -> KafkaSecurity:
        """How every Kafka client connects: protocol, SASL user and password (file already read), CA bundle."""
        from argus.bus.kafka import KafkaSecurity

        password = self._kafka_password.get_secret_value() if self._kafka_password is not None else None
        return KafkaSecurity(protocol=self.kafka_security_protocol, sasl_mechanism=self.kafka_sasl_mechanism,
                             username=self.kafka_sasl_username, password=password, cafile=self.kafka_ssl_cafile)

    @property
    def mongo_connection_uri(self) -> SecretStr:
        """The MongoDB URI in force: ARGUS_MONGO_URI_FILE's content (read at start-up), else ARGUS_MONGO_URI."""
        return self._mongo_uri if self._mongo_uri is not None else self.mongo_uri

    @property
    def gallery_dir(self) -> Path:
        return self.gallery_path or self.data_dir / "gallery"

    def redacted(self) -> dict[str, Any]:
        """Settings safe to print or log: secrets masked."""
        out: dict[str, Any] = {}
        for name, value in self:
            if isinstance(value, SecretStr):
                out[name] = "**********" if value.get_secret_value() else ""
            elif isinstance(value, Enum):
                out[name] = value.value
            elif isinstance(value, Path):
                out[name] = str(value)
            else:
                out[name] = value
        return out


def _read_secret_file(var: str, path: Path, problems: list[str]) -> str | None:
    """A mounted Secret's text (one trailing newline stripped), or None with the problem appended."""
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as e:
        why = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
        problems.append(f"{var}: expected a readable UTF-8 file, got {str(path)!r} ({why})")
        return None


#: ``ARGUS_*`` variables that are not settings: the dev tooling's own (argus_dev.devservers).
TOOL_VARIABLES = frozenset({"ARGUS_REPO", "ARGUS_DEV_HOME", "ARGUS_DEV_STATE"})
#: Settings that were renamed, so an old manifest fails with the new name instead of being silently ignored.
RENAMED = {"ARGUS_BATCH_MAX": "ARGUS_INFERENCE_BATCH_MAX", "ARGUS_RETENTION_DAYS": "ARGUS_RETENTION_EVENTS_DAYS"}


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """One line per ``ARGUS_*`` variable that no setting reads: a typo (``ARGUS_COOLDOWNS=30``) would otherwise
    leave the default in force without anybody being told."""
    import difflib

    known = {f"ARGUS_{name.upper()}" for name in Settings.model_fields}
    lines = []
    for var in sorted(v for v in environ if v.upper().startswith("ARGUS_")):
        name = var.upper()
        if name in known or name in TOOL_VARIABLES:
            continue
        if name in RENAMED:
            lines.append(f"{var}: renamed to {RENAMED[name]}")
            continue
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.75)
        hint = f" (did you mean {close[0]}?)" if close else " (argus config --list shows them all)"
        lines.append(f"{var}: expected a known ARGUS_* setting, got an unknown name{hint}")
    return lines


def load_settings(**overrides: Any) -> Settings:
    """Build Settings from the environment plus ``overrides``; turn pydantic's errors into one ConfigError.
    Unknown ``ARGUS_*`` names in the environment are refused too, every problem listed at once."""
    import os

    lines = unknown_variables(os.environ)
    try:
        settings = Settings(**overrides)
    except (SettingsError, RecursionError) as e:  # unparsable (or too deeply nested) JSON, before validation runs
        lines.append(f"{e} (JSON expected for this variable)")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from e
    except ValidationError as e:
        for err in e.errors():
            field = ".".join(str(p) for p in err["loc"]) or "settings"
            var = f"ARGUS_{field.upper()}" if err["loc"] else "settings"
            given = err.get("input")
            # A model-level error's input is every value given, secrets included: never shown.
            shown = "" if not err["loc"] or any(w in field for w in ("secret", "uri", "url", "password")) \
                else f" (got {given!r})"
            lines.append(f"{var}: {err['msg']}{shown}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from e
    if lines:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines))
    return settings
