"""Detection at an interval (issue 12, ``ARGUS_DETECT_INTERVAL``): the decision as a table, and on a real face the
frames in between are neither detected nor embedded while the track survives them and the person is still named."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from argus.bus.base import Record
from argus.config import load_settings
from argus.gallery.base import Person
from argus.gallery.memory import MemoryGallery
from argus.imaging import decode_jpeg, encode_jpeg
from argus.metrics import StageMetrics
from argus.motion import DetectMode, should_detect
from argus.runtime.resources import Resources
from argus.runtime.runner import Item, Output
from argus.schemas import TOPIC_FACES, TOPIC_FRAMES, FacesV3, FrameV2, MatchesV3, encode

ASSETS = Path(__file__).resolve().parents[2] / "assets"
T0 = 1_767_225_600.0
GAP = 1.0  # max_gap_s in the table: half of the default track_max_age_s


@pytest.mark.parametrize(("keyframe", "seq", "ts", "last_seq", "last_ts", "interval", "young", "expected"), [
    (False, 11, 2.2, 10, 2.0, 1, False, "detect"),      # interval 1 (the default): every frame
    (False, 11, 2.2, 10, 2.0, 3, False, "skip"),     # 1 frame after the last detection: tracked, not detected
    (False, 12, 2.4, 10, 2.0, 3, False, "skip"),     # 2 frames after
    (False, 13, 2.6, 10, 2.0, 3, True, "detect"),    # due: the whole frame (its regions), young tracks or not
    (False, 13, 2.6, 10, 2.0, 3, False, "detect"),      # the 3rd frame: due
    (True, 11, 2.2, 10, 2.0, 3, False, "detect"),       # a keyframe is always detected
    (False, 0, 0.0, None, None, 3, False, "detect"),    # the camera's first frame here (start, partition moved in)
    (False, 40, 8.0, 10, 2.0, 3, False, "detect"),      # motion onset: still frames were skipped in ingest, seq jumped
    (False, 11, 3.1, 10, 2.0, 3, False, "detect"),      # a 1-fps camera: max_gap_s passed, its tracks must be hit again
    (False, 11, 2.9, 10, 2.0, 5, False, "skip"),     # ... not yet
    (False, 4, 0.8, 10, 2.0, 3, False, "detect"),       # seq went back (stream restarted): detect, do not guess
    (False, 10, 2.0, 10, 2.0, 3, False, "detect"),      # the last detection's seq again (redelivered)
    (False, 11, 2.2, 10, 2.0, 3, True, "young_tracks"),  # a track with one hit: around it only
], ids=["interval 1", "between 1", "between 2", "young track, due", "due", "keyframe", "first frame",
        "motion onset", "max gap", "under max gap", "seq back", "same seq", "young track"])
def test_interval_decision(keyframe: bool, seq: int, ts: float, last_seq: int | None, last_ts: float | None,
                           interval: int, young: bool, expected: DetectMode) -> None:
    assert should_detect(keyframe=keyframe, seq=seq, ts=ts, last_seq=last_seq, last_ts=last_ts, interval=interval,
                         max_gap_s=GAP, young_track=young) == expected


# ---------------------------------------------------------------------------------------------- on a real face

FRAMES = 16
INTERVAL = 3
STEP_PX = 6  # the face walks this far per frame (30 px/s at 5 fps)


def _face(name: str, height: int) -> np.ndarray:
    face = decode_jpeg((ASSETS / "faces" / name).read_bytes())
    k = height / face.shape[0]
    return cv2.resize(face, (round(face.shape[1] * k), height))


def _frames() -> list[FrameV2]:
    """A 640x360 street where one face walks right: the first frame a keyframe, the rest gated motion frames."""
    face = _face("obama.jpg", 300)  # the face itself ~60 px wide: identification-grade
    fh, fw = face.shape[:2]
    out = []
    for seq in range(FRAMES):
        img = np.full((360, 640, 3), 120, np.uint8)
        x = 40 + STEP_PX * seq
        img[30:30 + fh, x:x + fw] = face
        out.append(FrameV2(camera_id="cam", seq=seq, ts_capture=T0 + seq / 5.0, ts_ingest=T0 + seq / 5.0,
                           width=640, height=360, jpeg=encode_jpeg(img, quality=90), keyframe=seq == 0,
                           gate="first_frame" if seq == 0 else "motion",
                           motion=() if seq == 0 else ((float(x - 10), 20.0, float(x + fw + 10), 340.0),)))
    return out


def _item(topic: str, msg: FrameV2 | FacesV3, offset: int) -> Item:
    return Item(Record(topic=topic, partition=0, offset=offset, key=msg.key(), value=encode(msg), timestamp_ms=0),
                msg)


def test_tracks_survive_the_frames_between_detections_and_the_person_is_still_named(tmp_path: Path) -> None:
    from argus_services.inference.stage import InferenceProcessor
    from argus_services.matcher.stage import MatcherProcessor

    # enrolled from another photo of him; the threshold below the model's 0.94 (this face scores ~0.945): the test
    # checks that the track's faces across the gaps still add up to his name, not the model's accuracy
    s = load_settings(data_dir=tmp_path, metrics_port=0, ort_threads=1, detect_interval=INTERVAL,
                      match_threshold=0.8)
    reg = CollectorRegistry()
    res = Resources(s, registry=reg, gallery=MemoryGallery(dim=128))
    pipeline = res.pipeline
    (enrol,) = pipeline.locate([cv2.copyMakeBorder(_face("obama2.jpg", 200), 60, 60, 60, 60, cv2.BORDER_CONSTANT,
                                                   value=(120, 120, 120))])
    assert len(enrol.detections) == 1
    res.gallery.enroll_many([(Person(person_id="obama", display_name="Obama", watchlist="default",
                                     enrolled_at=0.0), pipeline.embedder.embed(enrol.crops))],
                            actor="test", reason="interval test")
    inference = InferenceProcessor(res, StageMetrics("inference", registry=reg))
    matcher = MatcherProcessor(res, StageMetrics("matcher", registry=reg))
    frames = _frames()
    # one frame at a time, then a batch holding several frames of the camera: the decision follows seq either way
    outs = [o for f in frames[:7] for o in inference.process([_item(TOPIC_FRAMES, f, f.seq)])]
    outs += inference.process([_item(TOPIC_FRAMES, f, f.seq) for f in frames[7:]])
    faces = [o.message for o in outs if isinstance(o, Output) and isinstance(o.message, FacesV3)]

    # the new track is detected on the frame after its first (around it only: its second hit gives it a velocity),
    # then the frame every INTERVAL-th one
    detected = [0, 1, *range(INTERVAL, FRAMES, INTERVAL)]
    assert [f.seq for f in faces] == detected  # nothing published for the frames in between
    skipped = reg.get_sample_value("argus_inference_detections_skipped_total", {"reason": "interval"})
    assert skipped == FRAMES - len(detected)
    detector_images = sum(reg.get_sample_value("argus_inference_detector_images_total", {"kind": k}) or 0.0
                          for k in ("full", "crop"))
    assert detector_images == len(detected)  # one image per detected frame (a keyframe, then one crop each)
    assert all(len(f.faces) == 1 for f in faces)
    assert {face.track_id for f in faces for face in f.faces} == {"cam:0:0"}  # one track across the gaps
    assert not [e for f in faces for e in f.ended]  # 0.6 s between hits never ages it out (track_max_age_s 2 s)
    assert [face.track_state for f in faces for face in f.faces][-1] == "confirmed"
    assert any(face.embedded for f in faces for face in f.faces)

    matches = [o.message for o in matcher.process([_item(TOPIC_FACES, f, i) for i, f in enumerate(faces)])
               if isinstance(o, Output) and isinstance(o.message, MatchesV3)]
    named = {m.person_id for ms in matches for m in ms.matches if m.matched}
    assert named == {"obama"}, [(m.person_id, m.outcome, m.score) for ms in matches for m in ms.matches]
    inference.close()
    matcher.close()
    res.close()
