"""Frame sources: where sampled camera frames come from.

A camera delivers 25–30 frames a second but face recognition needs a few, so sources SAMPLE at the camera's
configured fps as close to the decoder as OpenCV allows: skipped frames are ``grab()``-ed (demuxed and decoded, but
never colour-converted or copied into Python) and only due frames are ``retrieve()``-d.

Two clocks, on purpose:

* files are sampled on their own media timeline (frame PTS), so the same clip always yields the same frames and
  ``ts = start time + media position``: tests and replays are deterministic and independent of machine speed;
* live streams (rtsp, http, devices) are read continuously (so OpenCV's buffer never serves stale frames) and
  sampled by wall clock, ``ts`` being the capture time.

Thread contract (the reader's watchdog depends on it): ``close()`` may be called from another thread while ``read()``
is blocked inside OpenCV. It returns at once; the blocked call, if it ever returns, releases its own capture and
its result is discarded, so a later ``open()`` starts a fresh capture while ``seq`` and the sampling schedule carry
on. OpenCV is never asked to release a capture that another thread is reading (that can crash inside FFmpeg).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np

from argus.cameras import Camera, is_live_url, redact_url
from argus.errors import ConfigError, InputError, SourceError
from argus.imaging import as_bgr, decode_image

__all__ = ["CapturedFrame", "FrameSource", "MemorySource", "OpenCVSource", "source_for_camera"]

log = logging.getLogger(__name__)

_EPS = 1e-6


@dataclass(frozen=True, eq=False)
class CapturedFrame:
    """One sampled frame. ``seq`` only grows per camera (also across reconnects): with camera id it is the frame key."""

    camera_id: str
    seq: int
    ts: float
    image: np.ndarray

    def __post_init__(self) -> None:
        img = self.image
        if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            got = f"{img.dtype} {img.shape}" if isinstance(img, np.ndarray) else type(img).__name__
            raise InputError(
                f"camera {self.camera_id!r} frame {self.seq}: expected an H×W×3 uint8 BGR image, got {got}"
            )
        if self.seq < 0:
            raise InputError(f"camera {self.camera_id!r}: expected seq >= 0, got {self.seq}")

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


@runtime_checkable
class FrameSource(Protocol):
    """A camera stream. ``read()`` returns None at the end of a finite stream, raises SourceError when the stream
    fails (the reader reconnects) and InputError for one undecodable frame (the reader counts it and goes on)."""

    @property
    def camera_id(self) -> str: ...

    def open(self) -> None: ...

    def read(self) -> CapturedFrame | None: ...

    def close(self) -> None: ...


def _check_fps(fps: float, camera_id: str) -> float:
    if not isinstance(fps, (int, float)) or isinstance(fps, bool) or not 0 < fps <= 60:
        raise ConfigError(f"camera {camera_id!r}: fps: expected 0 < fps <= 60, got {fps!r}")
    return float(fps)


@dataclass(eq=False)
class _Session:
    """One cv2.VideoCapture and the flags that let close() and a (possibly hung) read() hand it over safely."""

    cap: Any
    closed: threading.Event = field(default_factory=threading.Event)
    busy: bool = False
    fps: float = 0.0
    frame_count: float = 0.0
    last_t: float = -1.0  # media seconds of the last grabbed frame in this pass
    grabbed: int = 0  # frames grabbed in this pass


class OpenCVSource:
    """A camera, clip or device read through OpenCV's FFmpeg backend and sampled at ``fps``."""

    def __init__(
        self,
        *,
        camera_id: str,
        url: str,
        fps: float = 5.0,
        realtime: bool = False,
        loop: bool = False,
        open_timeout_s: float = 10.0,
        read_timeout_s: float = 10.0,
        start_time: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._camera_id = camera_id
        self._url = url
        self._safe_url = redact_url(url)
        self._period = 1.0 / _check_fps(fps, camera_id)
        self._live = is_live_url(url)
        self._realtime = realtime
        self._loop = loop
        self._open_timeout_ms = int(open_timeout_s * 1000)
        self._read_timeout_ms = int(read_timeout_s * 1000)
        self._clock = clock
        self._lock = threading.Lock()
        self._session: _Session | None = None
        # state that survives reconnects
        self._seq = 0
        self._start_wall = start_time
        self._next_due = 0.0  # files: global media seconds; live: time.monotonic()
        self._media_base = 0.0  # files: media seconds of earlier loop passes
        self._exhausted = False
        self._rt_anchor: tuple[float, float] | None = None  # (monotonic, media seconds) for realtime pacing

    @classmethod
    def from_camera(cls, camera: Camera, **kwargs: Any) -> OpenCVSource:
        return cls(camera_id=camera.id, url=camera.url, fps=camera.fps, **kwargs)

    @property
    def camera_id(self) -> str:
        return self._camera_id

    @property
    def url(self) -> str:
        """Redacted: safe to log."""
        return self._safe_url

    @property
    def live(self) -> bool:
        return self._live

    def _scrub(self, e: BaseException) -> str:
        """OpenCV messages may echo the URL: never let its credentials through."""
        return str(e).replace(self._url, self._safe_url).strip()

    def _err(self, what: str) -> str:
        return f"camera {self._camera_id!r} ({self._safe_url}): {what}"

    # ---------------------------------------------------------------- open / close
    def open(self) -> None:
        """Start a fresh capture. Idempotent; a file that already ended (loop=False) opens as an empty stream."""
        self.close()
        if self._exhausted and not self._loop:
            return
        session = _Session(cap=self._new_capture())
        session.fps = float(session.cap.get(cv2.CAP_PROP_FPS) or 0.0)
        session.frame_count = float(session.cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0.0)
        with self._lock:
            self._session = session
            if self._start_wall is None:
                self._start_wall = self._clock()
        log.debug("camera %r: opened %s (native fps %.3f)", self._camera_id, self._safe_url, session.fps)

    def _new_capture(self) -> Any:
        url = self._url
        dev = url.removeprefix("device:") if url.startswith("device:") else None
        if dev is None and not self._live and not Path(url).is_file():
            raise SourceError(self._err("no such video file"))
        try:
            if dev is not None:
                cap = cv2.VideoCapture(int(dev), cv2.CAP_ANY)
            elif self._live:
                params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, self._open_timeout_ms,
                          cv2.CAP_PROP_READ_TIMEOUT_MSEC, self._read_timeout_ms]
                cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)
            else:
                cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG)
        except cv2.error as e:
            raise SourceError(self._err(f"OpenCV failed to open the stream: {self._scrub(e)}")) from e
        if not cap.isOpened():
            cap.release()
            hint = ("unreachable, refused, or not a stream OpenCV can decode" if self._live or dev is not None
                    else "not a video, truncated header, or unsupported codec")
            raise SourceError(self._err(f"cannot open ({hint})"))
        return cap

    def close(self) -> None:
        """Never blocks: a capture that a hung read() still holds is released by that read() if it ever returns."""
        with self._lock:
            s, self._session = self._session, None
            if s is None:
                return
            s.closed.set()
            release_now = not s.busy
        if release_now:
            s.cap.release()

    # ---------------------------------------------------------------- read
    def read(self) -> CapturedFrame | None:
        with self._lock:
            s = self._session
            if s is None:
                if self._exhausted and not self._loop:
                    return None
                raise SourceError(self._err("read() on a closed source; call open() first"))
            s.busy = True
            next_due = self._next_due
            base = self._media_base
        try:
            if self._live:
                return self._read_live(s, next_due)
            return self._read_file(s, next_due, base)
        except cv2.error as e:
            raise SourceError(self._err(f"OpenCV error while reading: {self._scrub(e)}")) from e
        finally:
            with self._lock:
                s.busy = False
                orphaned = s.closed.is_set()
            if orphaned:
                s.cap.release()

    def _commit(self, s: _Session, img: np.ndarray | None, ts: float, next_due: float) -> CapturedFrame:
        """Publish the new schedule and seq, unless this session was abandoned while we were blocked."""
        with self._lock:
            if s.closed.is_set():
                raise SourceError(self._err("capture was closed while a read was in progress"))
            self._next_due = next_due
            if img is None:
                raise InputError(self._err(f"frame {self._seq}: decode failed (corrupt frame); skipped"))
            # seq keys every event id (camera:seq:face). A file restarts at its first frame, so replays land on
            # the same ids (idempotent); a live stream never repeats, so its seq is the capture time in ms —
            # a restarted ingest pod must not reuse ids and overwrite the history an earlier run wrote.
            seq = max(self._seq, int(ts * 1000)) if self._live else self._seq
            self._seq = seq + 1
        return CapturedFrame(camera_id=self._camera_id, seq=seq, ts=ts, image=img)

    def _retrieve(self, s: _Session) -> np.ndarray | None:
        ok, img = s.cap.retrieve()
        if not ok or img is None or img.size == 0:
            return None
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            try:
                img = as_bgr(img, where=f"camera {self._camera_id!r} frame")
            except InputError:
                return None
        return img

    def _read_live(self, s: _Session, next_due: float) -> CapturedFrame | None:
        while True:
            if s.closed.is_set():
                raise SourceError(self._err("capture was closed while a read was in progress"))
            if not s.cap.grab():
                raise SourceError(self._err("stream stopped delivering frames (read failed or timed out)"))
            now_mono = time.monotonic()
            if now_mono + _EPS < next_due:
                continue  # drain the stream; only due frames are converted
            ts = self._clock()
            img = self._retrieve(s)
            # Keep the long-run rate exact, but never try to "catch up" after a stall.
            due = next_due + self._period
            if due <= now_mono:
                due = now_mono + self._period
            return self._commit(s, img, ts, due)

    def _read_file(self, s: _Session, next_due: float, base: float) -> CapturedFrame | None:
        interval = 1.0 / s.fps if s.fps > 0 else 0.04
        while True:
            if s.closed.is_set():
                raise SourceError(self._err("capture was closed while a read was in progress"))
            if not s.cap.grab():
                return self._end_of_pass(s, interval)
            s.grabbed += 1
            pos_ms = s.cap.get(cv2.CAP_PROP_POS_MSEC)
            ok_pos = pos_ms is not None and math.isfinite(pos_ms) and pos_ms >= 0
            t = pos_ms / 1000.0 if ok_pos else max(s.last_t, -interval) + interval
            s.last_t = t
            g = base + t
            if g + _EPS < next_due:
                continue  # skipped: grabbed (decoded) but never converted to BGR nor copied
            img = self._retrieve(s)
            due = (math.floor((g + _EPS) / self._period) + 1) * self._period
            if self._realtime:
                self._pace(s, g)
            assert self._start_wall is not None
            return self._commit(s, img, self._start_wall + g, due)

    def _pace(self, s: _Session, g: float) -> None:
        now = time.monotonic()
        if self._rt_anchor is None or now - (self._rt_anchor[0] + g - self._rt_anchor[1]) > 1.0:
            self._rt_anchor = (now, g)  # first frame, or we fell >1 s behind (e.g. after a reconnect): re-anchor
            return
        wait = self._rt_anchor[0] + (g - self._rt_anchor[1]) - now
        if wait > 0:
            s.closed.wait(wait)

    def _end_of_pass(self, s: _Session, interval: float) -> CapturedFrame | None:
        """The file ran out: detect truncation, then either loop to a fresh pass or end the stream."""
        last_t, grabbed = s.last_t, s.grabbed
        declared = s.frame_count / s.fps if s.fps > 0 and s.frame_count > 0 else 0.0
        truncated = declared > 0 and 0 <= last_t < declared - max(1.0, 0.05 * declared)
        with self._lock:
            if s.closed.is_set():
                raise SourceError(self._err("capture was closed while a read was in progress"))
            pass_len = max(last_t, 0.0) + interval
            if self._loop:
                if grabbed == 0:
                    self._exhausted = True
                    raise SourceError(self._err("file has no decodable frames; cannot loop it"))
                self._media_base += pass_len
                self._next_due = max(self._next_due, self._media_base)
            else:
                self._exhausted = True
        if truncated:
            raise SourceError(self._err(
                f"video ended at {last_t:.2f} s of {declared:.2f} s declared: the file is truncated or corrupt"))
        if self._loop:
            new_cap = self._new_capture()
            with self._lock:
                old, s.cap = s.cap, new_cap
                s.last_t, s.grabbed = -1.0, 0
            old.release()
            return self._read_file(s, self._next_due, self._media_base)
        return None


class MemorySource:
    """The in-memory twin of OpenCVSource: a list of images (arrays or encoded bytes) played at ``fps``.

    Encoded bytes are decoded on read with the real JPEG decoder, so a corrupt payload exercises the same
    InputError path as a corrupt camera frame. ``ts = start_time + index / fps``, like a file's media timeline.
    """

    def __init__(
        self,
        *,
        camera_id: str,
        images: Sequence[np.ndarray | bytes],
        fps: float = 5.0,
        loop: bool = False,
        realtime: bool = False,
        start_time: float | None = None,
    ) -> None:
        if not images:
            raise ConfigError(f"camera {camera_id!r}: MemorySource expected at least one image, got none")
        self._camera_id = camera_id
        self._images = list(images)
        self._period = 1.0 / _check_fps(fps, camera_id)
        self._loop = loop
        self._realtime = realtime
        self._start = start_time
        self._pos = 0  # survives close/open, like a file that resumes
        self._seq = 0
        self._open = False
        self._closed = threading.Event()
        self._last_mono: float | None = None

    @property
    def camera_id(self) -> str:
        return self._camera_id

    def open(self) -> None:
        if self._start is None:
            self._start = time.time()
        self._closed = threading.Event()
        self._open = True

    def close(self) -> None:
        self._open = False
        self._closed.set()

    def read(self) -> CapturedFrame | None:
        if not self._open:
            raise SourceError(f"camera {self._camera_id!r} (memory): read() on a closed source; call open() first")
        if self._pos >= len(self._images) and not self._loop:
            return None
        idx = self._pos
        self._pos += 1
        if self._realtime and self._last_mono is not None:
            wait = self._last_mono + self._period - time.monotonic()
            if wait > 0:
                self._closed.wait(wait)
        self._last_mono = time.monotonic()
        item = self._images[idx % len(self._images)]
        where = f"camera {self._camera_id!r} (memory) image {idx % len(self._images)}"
        img = decode_image(item, where=where) if isinstance(item, (bytes, bytearray)) else as_bgr(item, where=where)
        assert self._start is not None
        seq = self._seq
        self._seq += 1
        return CapturedFrame(camera_id=self._camera_id, seq=seq, ts=self._start + idx * self._period, image=img)


def source_for_camera(camera: Camera, **kwargs: Any) -> OpenCVSource:
    """The production source for a registry entry (kwargs: realtime, loop, timeouts)."""
    return OpenCVSource.from_camera(camera, **kwargs)
