"""One person's visit on a real clip, through the real inference, matcher and alerter processors: one track, a few
embedded faces, one decision, one alert — and a stranger's visit that names nobody."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from argus.bus.base import Record
from argus.bus.memory import MemoryBus
from argus.config import load_settings
from argus.enroll import enroll_person
from argus.evaluation import sample_frames
from argus.gallery.base import Person
from argus.gallery.memory import MemoryGallery
from argus.imaging import encode_jpeg
from argus.metrics import StageMetrics
from argus.runtime.resources import Resources
from argus.runtime.runner import Item, Output
from argus.schemas import TOPIC_FACES, TOPIC_FRAMES, TOPIC_MATCHES, AlertV3, FacesV3, FrameV2, MatchesV3, encode
from argus.store.sqlite import SqliteEventStore
from argus_services.alerter.stage import AlerterProcessor
from argus_services.inference.stage import InferenceProcessor
from argus_services.matcher.stage import MatcherProcessor

ASSETS = Path(__file__).resolve().parents[2] / "assets"
FRAMES = 12


@pytest.fixture(scope="module")
def res(tmp_path_factory: pytest.TempPathFactory) -> Resources:
    d = tmp_path_factory.mktemp("tracks")
    s = load_settings(data_dir=d, cameras_file=ASSETS / "demo" / "cameras.toml", metrics_port=0, ort_threads=1,
                      sinks=["kafka"], track_max_embeddings=4)
    r = Resources(s, registry=CollectorRegistry(), bus=MemoryBus(partitions=1), gallery=MemoryGallery(dim=128),
                  store=SqliteEventStore(path=d / "events.sqlite"))
    for pid, name, images in [("pyfeat-man", "Man", ["pyfeat/single_face.jpg"]),
                              ("obama", "Barack Obama", ["faces/obama.jpg", "faces/obama2.jpg"])]:
        enroll_person(pipeline=r.pipeline, gallery=r.gallery, person=Person(person_id=pid, display_name=name),
                      images=[ASSETS / i for i in images], actor="test", reason="test")
    return r


def _item(topic: str, offset: int, msg: FrameV2 | FacesV3 | MatchesV3) -> Item:  # type: ignore[type-arg]
    return Item(Record(topic=topic, partition=0, offset=offset, key=msg.key(), value=encode(msg), timestamp_ms=0),
                msg)


def _visit(res: Resources, clip: str, camera: str) -> tuple[list[FacesV3], list[MatchesV3], list[AlertV3]]:
    t0 = time.time()
    frames = [FrameV2(camera_id=camera, seq=i, ts_capture=t0 + i * 0.2, ts_ingest=t0 + i * 0.2, width=f.shape[1],
                      height=f.shape[0], jpeg=encode_jpeg(f))
              for i, (_, f) in enumerate(sample_frames(ASSETS / clip, FRAMES))]
    reg = CollectorRegistry()
    inference = InferenceProcessor(res, StageMetrics("inference", registry=reg))
    faces: list[FacesV3] = []
    for start in range(0, len(frames), 4):  # micro-batches of 4, as the runner would cut them
        batch = [_item(TOPIC_FRAMES, start + k, f) for k, f in enumerate(frames[start:start + 4])]
        faces += [o.message for o in inference.process(batch) if isinstance(o, Output)]  # type: ignore[misc]
    matcher = MatcherProcessor(res, StageMetrics("matcher", registry=reg))
    matches = [o.message for o in matcher.process([_item(TOPIC_FACES, i, f) for i, f in enumerate(faces)])
               if isinstance(o, Output)]
    alerter = AlerterProcessor(res, StageMetrics("alerter", registry=reg), sinks=[])
    alerts = [o.message for o in alerter.process([_item(TOPIC_MATCHES, i, m) for i, m in enumerate(matches)])
              if isinstance(o, Output)]
    return faces, matches, alerts  # type: ignore[return-value]


def test_a_listed_persons_visit_is_one_track_a_few_embeddings_one_decision_and_one_alert(res: Resources):
    faces, matches, alerts = _visit(res, "pyfeat/single_face.mp4", "north-gate")
    seen = [f for m in faces for f in m.faces]
    assert len(seen) >= FRAMES - 2  # the man is on (nearly) every frame
    assert len({f.track_id for f in seen}) == 1, "one visit, one track"
    embedded = [f for f in seen if f.embedded]
    assert 2 <= len(embedded) <= 4  # the budget (ARGUS_TRACK_MAX_EMBEDDINGS=4), not every frame
    assert all(f.crop_jpeg[:2] == b"\xff\xd8" and len(f.embedding) == 512 for f in embedded)
    assert all(f.crop_jpeg == b"" and f.embedding == b"" for f in seen if not f.embedded)
    (decision,) = [tm for m in matches for tm in m.matches]
    assert (decision.person_id, decision.matched, decision.revision) == ("pyfeat-man", True, 1)
    assert decision.faces_embedded >= 2 and decision.faces_supporting >= 2
    assert len(decision.score_history) == decision.faces_embedded
    (alert,) = alerts
    assert alert.track_id == decision.track_id and alert.person_id == "pyfeat-man"
    assert alert.location.address == "Alexanderplatz 1, Berlin"
    assert alert.faces_seen >= alert.faces_embedded >= 2
    # the alert's emotion is the track's, smoothed over every face seen, with its timeline
    assert decision.emotion_timeline and decision.emotion_timeline[0].seq == decision.first_seq
    assert alert.emotion == decision.emotion_label == decision.emotion_timeline[-1].label
    assert alert.emotion_timeline == decision.emotion_timeline


def test_a_strangers_visit_names_nobody(res: Resources):
    faces, matches, alerts = _visit(res, "pyfeat/WolfgangLanger_Pexels.mp4", "market-square")
    assert any(f.embedded for m in faces for f in m.faces)
    assert matches == [] and alerts == []


def test_enrolling_someone_who_already_matches_a_listed_person_warns_with_the_score(res: Resources):
    from argus.enroll import enroll_person

    r = enroll_person(pipeline=res.pipeline, gallery=res.gallery,
                      person=Person(person_id="obama-alias", display_name="Same man, second entry"),
                      images=[ASSETS / "faces" / "obama3.jpg"], actor="test", reason="test")
    assert set(r.look_alikes) == {"obama"} and r.look_alikes["obama"] >= 0.9
    res.gallery.remove("obama-alias", actor="test", reason="test")
    r = enroll_person(pipeline=res.pipeline, gallery=res.gallery, person=Person(person_id="biden", display_name="B"),
                      images=[ASSETS / "faces" / "biden.jpg"], actor="test", reason="test")
    assert r.look_alikes == {}
    res.gallery.remove("biden", actor="test", reason="test")


def test_a_camera_whose_frame_size_changes_ends_its_tracks_and_starts_new_ones(res: Resources):
    t0 = time.time()
    (_, img), = sample_frames(ASSETS / "pyfeat" / "single_face.mp4", 1)
    inference = InferenceProcessor(res, StageMetrics("inference", registry=CollectorRegistry()))
    small = img[: img.shape[0] // 2 * 2, : img.shape[1] // 2 * 2]
    import cv2

    half = cv2.resize(small, (small.shape[1] // 2, small.shape[0] // 2))
    out = []
    for seq, frame in enumerate([img, img, half]):
        m = FrameV2(camera_id="north-gate", seq=seq, ts_capture=t0 + seq * 0.2, ts_ingest=t0, width=frame.shape[1],
                    height=frame.shape[0], jpeg=encode_jpeg(frame))
        out += [o.message for o in inference.process([_item(TOPIC_FRAMES, seq, m)]) if isinstance(o, Output)]
    first, last = out[0].faces[0].track_id, out[-1]
    assert [e.reason for e in last.ended] == ["frame_size_changed"] and last.ended[0].track_id == first
    assert all(f.track_id != first for f in last.faces)
