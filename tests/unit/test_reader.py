"""CameraReader: one supervised thread per camera that keeps frames flowing through failures and hangs."""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest

from argus.errors import ConfigError, SourceError
from argus.imaging import read_image
from argus.ingest.queue import DropOldestQueue
from argus.ingest.reader import CameraReader, ReaderGroup, ReaderState
from argus.ingest.sources import CapturedFrame, MemorySource, OpenCVSource
from argus.retry import Backoff

ASSETS = Path(__file__).resolve().parents[2] / "assets"
CLIP = ASSETS / "pyfeat" / "WolfgangLanger_Pexels.mp4"
FAST = Backoff(initial_s=0.05, factor=2.0, max_s=0.4, jitter=0.5)


def _wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    return read_image(str(ASSETS / "pyfeat" / "single_face.jpg"))


def test_backoff_grows_exponentially_is_capped_and_jittered_downwards() -> None:
    b = Backoff(initial_s=0.5, factor=2.0, max_s=30.0, jitter=0.5)
    rng = random.Random(1)
    for attempt, ceiling in [(0, 0.5), (1, 1.0), (3, 4.0), (6, 30.0), (1000, 30.0)]:
        delays = [b.delay(attempt, rng) for _ in range(200)]
        assert all(ceiling * 0.5 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > ceiling * 0.3  # actually spread out, so cameras don't sync up
    with pytest.raises(ConfigError, match="expected 0 <= initial_s <= max_s"):
        Backoff(initial_s=5, max_s=1)


def test_reader_samples_the_real_clip_to_the_end() -> None:
    reader = CameraReader(OpenCVSource(camera_id="plaza", url=str(CLIP), fps=5, start_time=1.0e9), queue_size=200)
    reader.start()
    assert reader.join(20)
    st = reader.stats()
    assert st.state is ReaderState.ended
    assert (st.frames_read, st.frames_dropped, st.reconnects, st.read_errors) == (99, 0, 0, 0)
    frames = reader.queue.drain()
    assert [f.seq for f in frames] == list(range(99))
    assert st.last_frame_ts == frames[-1].ts == pytest.approx(1.0e9 + 471 * 1001 / 24000)


def test_slow_consumer_gets_the_newest_frames_and_drops_are_counted() -> None:
    reader = CameraReader(OpenCVSource(camera_id="plaza", url=str(CLIP), fps=5), queue_size=4)
    reader.start()
    assert reader.join(20)
    st = reader.stats()
    assert (st.frames_read, st.frames_dropped, st.queue_depth) == (99, 95, 4)
    assert [f.seq for f in reader.queue.drain()] == [95, 96, 97, 98]


def test_corrupt_frames_are_counted_and_the_reader_goes_on(face: np.ndarray) -> None:
    jpeg = cv2.imencode(".jpg", face)[1].tobytes()
    images: list[np.ndarray | bytes] = [face, b"\xff\xd8garbage", face, jpeg[:100], jpeg]
    reader = CameraReader(MemorySource(camera_id="mem", images=images, fps=5), queue_size=10).start()
    assert reader.join(5)
    st = reader.stats()
    assert st.state is ReaderState.ended
    assert (st.frames_read, st.decode_errors, st.read_errors, st.reconnects) == (3, 2, 0, 0)
    assert st.last_error is not None and "camera 'mem'" in st.last_error
    assert [f.seq for f in reader.queue.drain()] == [0, 1, 2]


def test_truncated_file_is_one_read_error_then_a_clean_end(tmp_path: Path) -> None:
    data = CLIP.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    reader = CameraReader(OpenCVSource(camera_id="cut", url=str(cut), fps=5), queue_size=200, backoff=FAST).start()
    assert reader.join(20)
    st = reader.stats()
    assert st.state is ReaderState.ended
    assert (st.read_errors, st.reconnects) == (1, 1)
    assert 40 <= st.frames_read <= 50
    assert st.last_error is not None and "truncated or corrupt" in st.last_error


def test_reader_gives_up_after_max_failures(tmp_path: Path) -> None:
    src = OpenCVSource(camera_id="gone", url=str(tmp_path / "gone.mp4"))
    reader = CameraReader(src, backoff=FAST, max_failures=3).start()
    assert reader.join(5)
    st = reader.stats()
    assert (st.state, st.open_errors, st.reconnects) == (ReaderState.failed, 3, 2)
    assert st.last_error is not None and "no such video file" in st.last_error


def test_unreachable_camera_retries_with_backoff_while_other_cameras_keep_flowing(face: np.ndarray) -> None:
    dead = OpenCVSource(camera_id="gate-9", url="rtsp://admin:hunter2@127.0.0.1:1/x", open_timeout_s=2)
    alive = MemorySource(camera_id="lobby", images=[face], fps=20, loop=True, realtime=True)
    group = ReaderGroup.for_sources([dead, alive], queue_size=8, backoff=FAST).start()
    got: list[CapturedFrame] = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1.5:
        f = group.get(timeout=0.2)
        if f is not None:
            got.append(f)
    stats = group.stats()
    assert group.stop(timeout=2.0)
    bad, good = stats["gate-9"], stats["lobby"]
    assert {f.camera_id for f in got} == {"lobby"}
    assert len(got) >= 15 and good.frames_read >= 15  # ~20 fps for 1.5 s
    assert [f.seq for f in got] == sorted(f.seq for f in got)
    assert bad.state in (ReaderState.backoff, ReaderState.connecting)
    assert bad.frames_read == 0 and bad.reconnects >= 2
    assert 3 <= bad.open_errors <= 15  # retrying, but backing off (a hot loop would be thousands)
    assert 0.05 * 0.5 <= bad.last_backoff_s <= 0.4
    assert bad.last_error is not None and "'gate-9'" in bad.last_error and "hunter2" not in bad.last_error
    assert bad.seconds_since_frame is not None and bad.seconds_since_frame >= 1.0


class _HangingSource:
    """Test double for the fault a real server rarely produces on demand: read() that never returns.

    Session 1 delivers ``hang_after`` frames, then read() blocks until ``unblock`` is set. Later sessions work.
    """

    def __init__(self, image: np.ndarray, *, hang_after: int = 3) -> None:
        self.camera_id = "hang"
        self.image = image
        self.hang_after = hang_after
        self.unblock = threading.Event()
        self.sessions = 0
        self.closes = 0
        self.seq = 0
        self._n = 0

    def open(self) -> None:
        self.sessions += 1
        self._n = 0

    def read(self) -> CapturedFrame | None:
        if self.sessions == 1 and self._n >= self.hang_after:
            self.unblock.wait()
            raise SourceError("camera 'hang': connection reset")
        self._n += 1
        time.sleep(0.01)
        self.seq += 1
        return CapturedFrame(camera_id=self.camera_id, seq=self.seq - 1, ts=time.time(), image=self.image)

    def close(self) -> None:
        self.closes += 1


def test_hung_read_trips_the_watchdog_and_the_reader_reconnects(face: np.ndarray) -> None:
    src = _HangingSource(face)
    reader = CameraReader(src, queue_size=100, read_timeout_s=0.3, backoff=FAST).start()
    try:
        assert _wait_for(lambda: reader.stats().frames_read >= 10, timeout=10)
        st = reader.stats()
        assert st.watchdog_trips == 1 and st.reconnects == 1 and src.sessions == 2
        assert st.hung_threads == 1  # the abandoned read is still blocked in its daemon thread
        assert st.last_error is not None and "read() did not return within 0.3 s" in st.last_error
        assert st.state is ReaderState.streaming
        seqs = [f.seq for f in reader.queue.drain()]
        assert seqs == list(range(len(seqs)))  # nothing lost or repeated around the reconnect
        src.unblock.set()  # the hung call finally returns; its error must not disturb the new session
        assert _wait_for(lambda: reader.stats().hung_threads == 0, timeout=5)
        assert reader.stats().read_errors == 0
    finally:
        src.unblock.set()
        assert reader.stop(timeout=2.0)


def test_stop_returns_promptly_even_while_a_read_is_hung(face: np.ndarray) -> None:
    src = _HangingSource(face, hang_after=0)
    reader = CameraReader(src, read_timeout_s=60).start()
    assert _wait_for(lambda: src.sessions == 1)
    time.sleep(0.1)
    t0 = time.monotonic()
    assert reader.stop(timeout=2.0)
    assert time.monotonic() - t0 < 0.5
    assert reader.state is ReaderState.stopped
    src.unblock.set()


# --------------------------------------------------------------------------- a real stalled HTTP camera


class _StallingMjpegServer:
    """First connection: a few JPEG parts, then the socket stays open and silent (a wedged camera).
    Later connections stream normally. OpenCV's read really blocks here; the watchdog must cut it loose."""

    def __init__(self, jpeg: bytes) -> None:
        self.release = threading.Event()
        self.connections = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                outer.connections += 1
                first = outer.connections == 1
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    for i in range(200):
                        if first and i == 8:
                            outer.release.wait(30)
                            return
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                                         % len(jpeg) + jpeg + b"\r\n")
                        self.wfile.flush()
                        time.sleep(0.02)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/cam.mjpg"

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def stalling(face: np.ndarray) -> Iterator[_StallingMjpegServer]:
    server = _StallingMjpegServer(cv2.imencode(".jpg", face)[1].tobytes())
    yield server
    server.close()


def test_watchdog_frees_a_real_opencv_read_blocked_on_a_silent_http_camera(stalling: _StallingMjpegServer) -> None:
    # OpenCV's own read timeout is set far beyond the watchdog, so only the watchdog can end the blocked read.
    src = OpenCVSource(camera_id="wedged", url=stalling.url, fps=10, open_timeout_s=5, read_timeout_s=30)
    reader = CameraReader(src, queue_size=200, read_timeout_s=0.6, backoff=FAST).start()
    try:
        assert _wait_for(lambda: reader.stats().watchdog_trips >= 1, timeout=10)
        assert _wait_for(lambda: stalling.connections >= 2 and reader.stats().frames_read >= 8, timeout=10)
        st = reader.stats()
        assert st.watchdog_trips == 1 and st.reconnects >= 1
        frames = reader.queue.drain()
        assert all(b.seq > a.seq for a, b in itertools.pairwise(frames))  # no key repeated around the reconnect
        assert [f.seq for f in frames] == [int(f.ts * 1000) for f in frames]  # live: capture time in ms
        assert all(b.ts > a.ts for a, b in itertools.pairwise(frames))
        stalling.release.set()  # the wedged socket closes: the abandoned read returns and releases its capture
        assert _wait_for(lambda: reader.stats().hung_threads == 0, timeout=10)
    finally:
        assert reader.stop(timeout=2.0)


def test_shared_queue_and_bad_arguments_are_rejected(face: np.ndarray) -> None:
    src = MemorySource(camera_id="m", images=[face])
    with pytest.raises(ConfigError, match="read_timeout_s: expected > 0, got 0"):
        CameraReader(src, read_timeout_s=0)
    q: DropOldestQueue[CapturedFrame] = DropOldestQueue(2)
    r1, r2 = CameraReader(src, queue=q), CameraReader(MemorySource(camera_id="m", images=[face]), queue=q)
    with pytest.raises(ConfigError, match="duplicates m"):
        ReaderGroup([r1, r2])
