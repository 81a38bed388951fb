"""A corrupt frame on the real Kafka broker is dead-lettered by the real inference process, the good frames next to
it still go through, and ``argus dead-letters`` shows what was wrong and where — and can replay it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest

from argus.bus.kafka import KafkaBus
from argus.schemas import TOPIC_DEADLETTER, TOPIC_FACES, TOPIC_FRAMES, FrameV2, encode
from argus_dev.devservers import Endpoint

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _argus(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "argus.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def test_a_corrupt_frame_is_dead_lettered_named_and_replayable_while_good_frames_pass(kafka_server: Endpoint,
                                                                                     tmp_path: Path) -> None:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ARGUS_")},
           "ARGUS_BUS": "kafka", "ARGUS_KAFKA_BOOTSTRAP": kafka_server.address, "ARGUS_DATA_DIR": str(tmp_path),
           "ARGUS_ORT_THREADS": "1", "ARGUS_METRICS_PORT": "0"}
    bus = KafkaBus(bootstrap=kafka_server.address)
    try:
        bus.ensure_topics([TOPIC_FRAMES, TOPIC_FACES, TOPIC_DEADLETTER])
        before = {t: sum(bus.end_offsets(t)) for t in (TOPIC_FRAMES, TOPIC_FACES, TOPIC_DEADLETTER)}
        face = cv2.imread(str(ROOT / "assets/pyfeat/single_face.jpg"))
        ok, jpeg = cv2.imencode(".jpg", face)
        assert ok
        now = time.time()
        frames = [FrameV2(camera_id="gate-dl", seq=i, ts_capture=now, ts_ingest=now, width=face.shape[1],
                          height=face.shape[0], jpeg=jpeg.tobytes()) for i in (1, 3)]
        frames.insert(1, FrameV2(camera_id="gate-dl", seq=2, ts_capture=now, ts_ingest=now, width=640, height=480,
                                 jpeg=jpeg.tobytes()[:800]))  # truncated in transit
        for f in frames:
            bus.publish(TOPIC_FRAMES, key=f.key(), value=encode(f))
        bus.flush()

        run = _argus(["run", "inference", "--exit-when-idle", "3"], env, timeout=300)
        assert run.returncode == 0, run.stderr[-3000:]
        assert "camera 'gate-dl' frame 2" in run.stderr  # the log names the camera and the frame
        assert sum(bus.end_offsets(TOPIC_FACES)) - before[TOPIC_FACES] == 2  # both good frames went through
        assert sum(bus.end_offsets(TOPIC_DEADLETTER)) - before[TOPIC_DEADLETTER] == 1

        bus.publish(TOPIC_DEADLETTER, key=b"gate-dl", value=b"not a dead letter")  # written by something else
        bus.flush()
        listed = _argus(["dead-letters", "--camera", "gate-dl", "--wait", "3"], env)
        assert listed.returncode == 0, listed.stderr[-3000:]
        assert f"skipped {TOPIC_DEADLETTER}[" in listed.stderr  # named, and the listing went on
        rows = [json.loads(line) for line in listed.stdout.splitlines()]
        assert len(rows) == 1
        assert rows[0]["stage"] == "inference" and rows[0]["error_kind"] == "corrupt_frame"
        assert rows[0]["source"].startswith(f"{TOPIC_FRAMES}[")
        assert "frame 2" in rows[0]["error"]
        assert sum(bus.end_offsets(TOPIC_DEADLETTER)) - before[TOPIC_DEADLETTER] == 2  # listing consumed nothing

        replay = _argus(["dead-letters", "--camera", "gate-dl", "--wait", "3", "--replay"], env)
        assert replay.returncode == 0, replay.stderr[-3000:]
        assert json.loads(replay.stdout.splitlines()[-1]) == {"replayed": 1}
        assert sum(bus.end_offsets(TOPIC_FRAMES)) - before[TOPIC_FRAMES] == 4  # the original bytes, back at the source
    finally:
        bus.close()


def test_dead_letters_on_the_in_memory_bus_is_a_clear_configuration_error(tmp_path: Path) -> None:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ARGUS_")}, "ARGUS_DATA_DIR": str(tmp_path)}
    out = _argus(["dead-letters"], env)
    assert out.returncode == 2
    assert "ARGUS_BUS=kafka" in out.stderr
