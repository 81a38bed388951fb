"""Bad input at the real stages: a clear error naming the thing, and the stage keeps serving the rest."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from wire import matches

from argus.bus.memory import MemoryBus
from argus.config import load_settings
from argus.enroll import enroll_person
from argus.errors import NoFaceError
from argus.gallery.base import Person
from argus.gallery.memory import MemoryGallery
from argus.imaging import encode_jpeg, read_image
from argus.runtime.resources import Resources
from argus.runtime.runner import StageRunner
from argus.runtime.service import build_service
from argus.schemas import (
    TOPIC_DEADLETTER,
    TOPIC_FACES,
    TOPIC_FRAMES,
    TOPIC_MATCHES,
    DeadLetterV1,
    FacesV3,
    FrameV2,
    decode,
    encode,
)
from argus.store.sqlite import SqliteEventStore

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "assets"


@pytest.fixture(scope="module")
def resources(tmp_path_factory: pytest.TempPathFactory) -> Resources:
    d = tmp_path_factory.mktemp("stages")
    s = load_settings(data_dir=d, cameras_file=ASSETS / "demo" / "cameras.toml", metrics_port=0, ort_threads=1)
    return Resources(s, registry=CollectorRegistry(), bus=MemoryBus(partitions=1),
                     gallery=MemoryGallery(dim=128), store=SqliteEventStore(path=Path(":memory:")))


def _read_all(bus: MemoryBus, topic: str) -> list[bytes]:
    c = bus.consumer([topic], group=f"t-{time.monotonic_ns()}")
    out = [r.value for r in c.poll(max_records=1000, timeout_s=0.05)]
    c.close()
    return out


def _frame(seq: int, jpeg: bytes, cam: str = "north-gate") -> FrameV2:
    now = time.time()
    return FrameV2(camera_id=cam, seq=seq, ts_capture=now, ts_ingest=now, width=640, height=480, jpeg=jpeg)


def test_a_corrupt_jpeg_is_dead_lettered_naming_camera_and_frame_and_good_frames_still_yield_faces(resources):
    bus = resources.bus
    svc = build_service("inference", resources)
    good = encode_jpeg(read_image(str(ASSETS / "faces" / "astronaut.png")))
    truncated = good[: len(good) // 3]
    for seq, payload in enumerate([good, b"\xff\xd8\xff\xe0garbage", truncated, good]):
        bus.publish(TOPIC_FRAMES, key=b"north-gate", value=encode(_frame(seq, payload)))
    assert isinstance(svc, StageRunner)  # consuming stages are runners: drive them one batch at a time
    while svc.run_once():
        pass
    faces = [decode(v, FacesV3) for v in _read_all(bus, TOPIC_FACES)]
    assert {f.seq for f in faces} >= {0, 3}
    dead = [decode(v, DeadLetterV1) for v in _read_all(bus, TOPIC_DEADLETTER)]
    corrupt = [d for d in dead if d.error_kind == "corrupt_frame"]
    assert corrupt and all("camera 'north-gate' frame" in d.error for d in corrupt)
    assert 1 in {d.source_offset for d in corrupt}
    svc.close()


def test_enrollment_photo_without_a_face_is_rejected_by_name(resources):
    gallery = MemoryGallery(dim=128)
    person = Person(person_id="someone", display_name="Someone", watchlist="default")
    no_face = ASSETS / "pyfeat" / "free-mountain-vector-01.jpg"
    with pytest.raises(NoFaceError, match="free-mountain-vector-01.jpg: no face found"):
        enroll_person(pipeline=resources.pipeline, gallery=gallery, person=person, images=[no_face],
                      actor="test", reason="test")
    r = enroll_person(pipeline=resources.pipeline, gallery=gallery, person=person,
                      images=[no_face, ASSETS / "pyfeat" / "multi_face.jpg", ASSETS / "faces" / "biden.jpg"],
                      actor="test", reason="test")
    assert r.accepted == [str(ASSETS / "faces" / "biden.jpg")]
    assert "5 faces found (expected exactly one" in r.rejected[str(ASSETS / "pyfeat" / "multi_face.jpg")]
    assert len(gallery) == 1


def test_matches_for_an_unknown_camera_are_dead_lettered_and_known_cameras_still_alert(resources):
    bus = resources.bus
    svc = build_service("alerter", resources)
    bus.publish(TOPIC_MATCHES, key=b"nowhere-cam", value=encode(matches("nowhere-cam", 1, time.time())))
    bus.publish(TOPIC_MATCHES, key=b"north-gate", value=encode(matches("north-gate", 2, time.time())))
    assert isinstance(svc, StageRunner)  # consuming stages are runners: drive them one batch at a time
    while svc.run_once():
        pass
    dead = [decode(v, DeadLetterV1) for v in _read_all(bus, TOPIC_DEADLETTER)]
    unknown = [d for d in dead if d.error_kind == "unknown_camera"]
    assert len(unknown) == 1 and "unknown camera id 'nowhere-cam'" in unknown[0].error
    alerts = [r.alert for r in resources.store.query_alerts(person_id="p1")]
    assert [a.camera_id for a in alerts] == ["north-gate"]
    assert alerts[0].location.address == "Alexanderplatz 1, Berlin"
    svc.close()


def test_a_grey_or_rgba_frame_is_analysed_like_its_colour_version(resources):
    img = read_image(str(ASSETS / "faces" / "astronaut.png"))
    grey = img.mean(axis=2).astype(np.uint8)
    rgba = np.dstack([img, np.full(img.shape[:2], 255, np.uint8)])
    counts = [len(f) for f in resources.pipeline.process([img, grey, rgba])]
    assert counts == [1, 1, 1]
