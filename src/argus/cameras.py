"""The camera registry: which streams to watch, how often to sample them, and where each camera stands.

It is a TOML file (stdlib ``tomllib``: typed values, comments, no YAML surprises) with one ``[[camera]]`` table per
camera::

    [[camera]]
    id = "gate-3"                       # slug; keys every bus topic, so it must be stable
    name = "North gate, lane 3"
    url = "rtsp://user:pass@10.0.0.7/stream1"   # or http(s)://, device:0, or a file path
    fps = 5                             # sampling rate, 0 < fps <= 60
    enabled = true
    timezone = "Europe/Berlin"          # optional IANA name: the console shows the camera's local time
    motion_mask = [[[0, 0], [400, 0], [400, 60], [0, 60]]]  # optional: polygons (x, y frame pixels) whose
                                        # movement never counts as motion (a clock overlay, a tree, a road)

    [camera.location]
    lat = 52.5163
    lon = 13.3777
    address = "Pariser Platz 1, Berlin"
    zone = "north"

Loading validates everything up front and reports every problem at once, one line each, naming the file, the camera
entry and the field, so an operator can fix the file in one pass. Relative file URLs resolve against the registry
file's directory (the registry and its clips move together). Credentials inside stream URLs never reach logs:
use :func:`redact_url` whenever a URL is shown.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from argus.errors import ConfigError
from argus.ids import SLUG_RULE, is_slug

__all__ = ["Camera", "CameraRegistry", "Location", "UnknownCameraError", "is_live_url", "redact_url"]

_DEVICE_RE = re.compile(r"^device:(\d+)$")
_NETWORK_SCHEMES = ("rtsp", "rtsps", "http", "https")
_SECRET_QUERY_KEYS = re.compile(r"(pass|pwd|token|secret|key|auth|user|sig)", re.IGNORECASE)
MAX_FPS = 60.0


def redact_url(url: str) -> str:
    """``rtsp://admin:hunter2@cam/x?token=abc`` → ``rtsp://***@cam/x?token=***``; file paths are returned as-is."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if not parts.scheme or "://" not in url:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    elif "@" in url.split("://", 1)[1]:  # an unescaped '/', '?' or '#' in the password ends the netloc before '@'
        return redact_url(f"{parts.scheme}://***@{url.rsplit('@', 1)[1]}")
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, "***" if _SECRET_QUERY_KEYS.search(k) else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def is_live_url(url: str) -> bool:
    """Network streams and devices are live (sampled by wall clock); anything else is a finite file."""
    return bool(_DEVICE_RE.match(url)) or ("://" in url and url.split("://", 1)[0].lower() in _NETWORK_SCHEMES)


class Location(BaseModel):
    """Where the camera is; copied into every alert so a responder knows where to go."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    lat: float
    lon: float
    address: str = Field(min_length=1)
    zone: str = Field(min_length=1)

    @field_validator("lat", "lon")
    @classmethod
    def _on_the_globe(cls, v: float, info: ValidationInfo) -> float:
        limit = 90 if info.field_name == "lat" else 180
        if not -limit <= v <= limit:
            raise ValueError(f"expected -{limit} <= {info.field_name} <= {limit}, got {v:g}")
        return v


class Camera(BaseModel):
    """One stream. ``id`` keys every bus topic; ``fps`` is how often we sample, not the camera's native rate."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    id: str
    name: str = Field(min_length=1)
    url: str
    fps: float = 5.0
    location: Location
    enabled: bool = True
    timezone: str | None = None
    #: Polygons, (x, y) points in frame pixels, whose changes are not motion (argus.motion's mask): ingest's gate
    #: skips a frame in which only they moved. Frame pixels, not fractions: the mask is drawn on a snapshot.
    motion_mask: tuple[tuple[tuple[float, float], ...], ...] = ()

    @field_validator("motion_mask", mode="before")
    @classmethod
    def _motion_mask(cls, v: Any) -> tuple[tuple[tuple[float, float], ...], ...]:
        shape = "a list of polygons, each a list of >= 3 [x, y] points (finite numbers >= 0, frame pixels)"
        if not isinstance(v, list | tuple):
            raise ValueError(f"expected {shape}, got {type(v).__name__}")
        polygons = []
        for k, poly in enumerate(v):
            if not isinstance(poly, list | tuple) or len(poly) < 3:
                raise ValueError(f"polygon {k}: expected {shape}, got {poly!r}")
            points = []
            for pt in poly:
                ok = isinstance(pt, list | tuple) and len(pt) == 2 and all(
                    isinstance(c, int | float) and not isinstance(c, bool) and math.isfinite(c) and c >= 0 for c in pt)
                if not ok:
                    raise ValueError(f"polygon {k}: expected [x, y] points of finite numbers >= 0, got {pt!r}")
                points.append((float(pt[0]), float(pt[1])))
            polygons.append(tuple(points))
        return tuple(polygons)

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not is_slug(v):
            raise ValueError(f"expected {SLUG_RULE}, got {v!r}")
        return v

    @field_validator("fps")
    @classmethod
    def _fps(cls, v: float) -> float:
        if not 0.0 < v <= MAX_FPS:
            raise ValueError(f"expected 0 < fps <= {MAX_FPS:g}, got {v:g}")
        return v

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as e:  # ValueError: a path-like key such as "../x"
            raise ValueError(f"expected an IANA time zone name such as 'Europe/Berlin', got {v!r}") from e
        return v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str, info: ValidationInfo) -> str:
        v = v.strip()
        if not v:
            raise ValueError("expected rtsp://, http(s)://, device:N or a file path, got an empty string")
        if v.startswith("device:"):
            if not _DEVICE_RE.match(v):
                raise ValueError(f"expected device:N with N a non-negative integer, got {v!r}")
            return v
        if "://" in v:
            scheme = v.split("://", 1)[0].lower()
            if scheme == "file":
                v = v[len("file://"):]
            elif scheme in _NETWORK_SCHEMES:
                if not urlsplit(v).hostname:
                    raise ValueError(f"expected a host in the {scheme} URL, got {redact_url(v)!r}")
                return v
            else:
                raise ValueError(
                    f"expected rtsp://, rtsps://, http(s)://, file://, device:N or a file path, got {redact_url(v)!r}"
                )
        base = (info.context or {}).get("base_dir") if info.context else None
        try:
            path = Path(v).expanduser()
            if not path.is_absolute() and base is not None:
                path = Path(base) / path
            return str(path.resolve()) if base is not None else str(path)
        except RuntimeError as e:  # "~user" of an unknown user, a symlink loop: pydantic only wraps ValueError
            raise ValueError(f"expected a file path, got {v!r}: {e}") from e

    @property
    def live(self) -> bool:
        return is_live_url(self.url)

    @property
    def safe_url(self) -> str:
        """The URL with credentials masked: the only form that may be logged."""
        return redact_url(self.url)

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        # pydantic's repr would otherwise print rtsp credentials into any log line that shows a Camera.
        for k, v in super().__repr_args__():
            yield (k, redact_url(v)) if k == "url" else (k, v)


class UnknownCameraError(ConfigError, KeyError):
    """A camera id not in the registry. A KeyError too, so mapping-style callers can catch it naturally."""

    def __str__(self) -> str:  # KeyError would repr() the message and wrap it in quotes
        return str(self.args[0]) if self.args else ""


def _fmt_loc(loc: tuple[int | str, ...]) -> str:
    # repr() a key with a newline or other control character: one problem stays one line
    return ".".join(str(p) if str(p).isprintable() else repr(p) for p in loc) or "(entry)"


def _fmt_error(err: Any, fields: tuple[str, ...]) -> str:
    loc = _fmt_loc(tuple(err.get("loc", ())))
    kind = err.get("type", "")
    if kind == "missing":
        return f"{loc}: missing required field"
    if kind == "extra_forbidden":
        return f"{loc}: unknown field; expected one of {', '.join(fields)}"
    msg = str(err.get("msg", ""))
    if kind == "value_error":
        return f"{loc}: {msg.removeprefix('Value error, ')}"
    given = err.get("input")
    shown = type(given).__name__ if loc == "url" else repr(given)  # a wrong-typed url may still hold credentials
    msg = msg[:1].lower() + msg[1:]
    return f"{loc}: {msg.removeprefix('input should be ').join(('expected ', ''))}, got {shown}"


class CameraRegistry:
    """All cameras by id; immutable after load, so every stage can share one instance without locks."""

    def __init__(self, cameras: Iterable[Camera], *, source: str = "<memory>") -> None:
        self._source = source
        self._by_id: dict[str, Camera] = {}
        for i, cam in enumerate(cameras):
            if cam.id in self._by_id:
                raise ConfigError(f"{source}: camera[{i}] {cam.id!r}: id: duplicate camera id")
            self._by_id[cam.id] = cam

    @classmethod
    def load(cls, path: str | Path) -> CameraRegistry:
        """Parse and validate a TOML registry; every problem in the file is reported in one ConfigError."""
        p = Path(path)
        label = str(path)
        try:
            raw = p.read_bytes()
        except OSError as e:
            raise ConfigError(f"{label}: cannot read camera registry: {e.strerror or e}") from e
        try:
            doc = tomllib.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise ConfigError(f"{label}: expected UTF-8 TOML, got undecodable bytes at offset {e.start}") from e
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{label}: invalid TOML: {e}") from e
        return cls.from_dict(doc, source=label, base_dir=p.resolve().parent)

    @classmethod
    def from_dict(
        cls, doc: dict[str, Any], *, source: str = "<memory>", base_dir: Path | None = None
    ) -> CameraRegistry:
        problems: list[str] = []
        extra = sorted(k for k in doc if k != "camera")
        if extra:
            problems.append(f"{source}: unknown top-level key(s) {', '.join(map(repr, extra))}; "
                            "expected only [[camera]] tables")
        entries = doc.get("camera", [])
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise ConfigError(f"{source}: camera: expected an array of [[camera]] tables, got {type(entries).__name__}")
        if not entries and not extra:
            problems.append(f"{source}: expected at least one [[camera]] table, got none")
        fields = tuple(Camera.model_fields)
        cameras: list[Camera] = []
        first_index: dict[str, int] = {}
        ctx = {"base_dir": base_dir} if base_dir is not None else {}
        for i, entry in enumerate(entries):
            who = f"camera[{i}] {entry['id']!r}" if isinstance(entry.get("id"), str) else f"camera[{i}]"
            try:
                cam = Camera.model_validate(entry, context=ctx)
            except ValidationError as e:
                problems.extend(f"{source}: {who}: {_fmt_error(err, fields)}" for err in e.errors())
                continue
            if cam.id in first_index:
                problems.append(f"{source}: {who}: id: duplicate of camera[{first_index[cam.id]}]")
                continue
            first_index[cam.id] = i
            cameras.append(cam)
        if problems:
            raise ConfigError("\n".join(problems))
        return cls(cameras, source=source)

    @property
    def source(self) -> str:
        return self._source

    def get(self, camera_id: str) -> Camera:
        try:
            return self._by_id[camera_id]
        except KeyError:
            known = ", ".join(sorted(self._by_id)) or "(none)"
            raise UnknownCameraError(f"unknown camera id {camera_id!r}; known: {known}") from None

    def enabled(self) -> list[Camera]:
        return [c for c in self._by_id.values() if c.enabled]

    def shard(self, index: int, shards: int) -> list[Camera]:
        """The enabled cameras ingest replica ``index`` of ``shards`` reads: round-robin over the sorted ids, so
        every camera has exactly one reader and replicas differ by at most one camera. A registry change rolls
        every ingest replica anyway (its ConfigMap hash changes), so reassignment on change costs nothing."""
        if not 0 <= index < shards:
            raise ValueError(f"shard: expected 0 <= index < {shards}, got {index}")
        ids = sorted(c.id for c in self.enabled())
        return [self._by_id[i] for i in ids[index::shards]]

    def __iter__(self) -> Iterator[Camera]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, camera_id: object) -> bool:
        return camera_id in self._by_id

    def __repr__(self) -> str:
        return f"CameraRegistry({len(self)} cameras from {self._source})"
