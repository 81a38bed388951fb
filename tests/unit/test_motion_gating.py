"""Motion gating (issue 12): ingest's gate rule, the registry's motion mask, frames v2, where inference detects and
detection in crops — each as a table or a small real case."""

from __future__ import annotations

from pathlib import Path

import cv2
import msgpack
import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from argus.cameras import CameraRegistry
from argus.config import load_settings
from argus.errors import ConfigError, SchemaError
from argus.faces.pipeline import FacePipeline
from argus.imaging import decode_jpeg
from argus.ingest.gating import UNGATED, CameraGates, GateDecision, decide
from argus.motion import DETECT_CROP, MotionResult, Reason, detection_regions
from argus.runtime.resources import Resources
from argus.schemas import MAX_MOTION_REGIONS, FrameV2, decode, encode

ASSETS = Path(__file__).resolve().parents[2] / "assets"
T0 = 1_700_000_000.0


def _result(reason: Reason, boxes: tuple[tuple[int, int, int, int], ...] = ()) -> MotionResult:
    full = reason in ("first_frame", "light_change_reset", "periodic_full_frame")
    return MotionResult(ts=T0, detect=reason != "no_motion", reason=reason, full_frame=full,
                        boxes=boxes, changed=0.1)


BOX = (10, 20, 60, 90)


# ---------------------------------------------------------------------------------------------- the gate rule

@pytest.mark.parametrize(("result", "expected"), [
    (_result("no_motion"), GateDecision(publish=False, keyframe=False, gate="no_motion", skip="no_motion")),
    (_result("motion", (BOX,)), GateDecision(publish=True, keyframe=False, gate="motion", motion=(BOX,))),
    (_result("first_frame"), GateDecision(publish=True, keyframe=True, gate="first_frame")),
    (_result("light_change_reset"), GateDecision(publish=True, keyframe=True, gate="light_change_reset")),
    (_result("periodic_full_frame", (BOX,)), GateDecision(publish=True, keyframe=True, gate="periodic_full_frame")),
    (_result("motion", (BOX,) * (MAX_MOTION_REGIONS + 1)), GateDecision(publish=True, keyframe=True, gate="motion")),
], ids=["still: skipped", "motion: its boxes", "first frame: keyframe", "light change: keyframe",
        "periodic: keyframe even with motion", "more boxes than a message carries: keyframe"])
def test_gate_decision(result: MotionResult, expected: GateDecision) -> None:
    assert decide(result) == expected


def _frame(value: int = 100, square_at: int | None = None) -> np.ndarray:
    img = np.full((180, 320, 3), value, np.uint8)
    img[:, ::7] = 60  # texture, so the contrast stretch has something to stretch
    if square_at is not None:
        img[60:100, square_at:square_at + 40] = (20, 230, 240)
    return img


def test_gating_off_publishes_every_frame_as_a_keyframe() -> None:
    gates = CameraGates([], enabled=False, keyframe_s=5.0)
    assert [gates.gate("cam", _frame(), T0 + k) for k in range(3)] == [UNGATED] * 3


def test_a_still_camera_is_skipped_between_keyframes_every_keyframe_s() -> None:
    gates = CameraGates([], enabled=True, keyframe_s=2.0)
    gates_seen = [gates.gate("cam", _frame(), T0 + 0.2 * k).gate for k in range(21)]
    assert gates_seen[0] == "first_frame"
    assert [k for k, g in enumerate(gates_seen) if g != "no_motion"] == [0, 10, 20]  # every 2 s of capture time


def test_cameras_are_gated_independently() -> None:
    gates = CameraGates([], enabled=True, keyframe_s=60.0)
    assert gates.gate("a", _frame(), T0).gate == "first_frame"
    assert gates.gate("a", _frame(), T0 + 0.2).skip == "no_motion"
    assert gates.gate("b", _frame(), T0 + 0.2).gate == "first_frame"  # b has its own background


def _registry(mask: object) -> CameraRegistry:
    return CameraRegistry.from_dict({"camera": [{
        "id": "gate-1", "name": "Gate", "url": "clip.mp4", "motion_mask": mask,
        "location": {"lat": 1.0, "lon": 2.0, "address": "x", "zone": "z"}}]})


def test_the_cameras_motion_mask_hides_its_area_from_the_gate() -> None:
    reg = _registry([[[140, 40], [240, 40], [240, 120], [140, 120]]])
    gates = CameraGates(reg.enabled(), enabled=True, keyframe_s=60.0)
    gates.gate("gate-1", _frame(), T0)
    assert gates.gate("gate-1", _frame(square_at=170), T0 + 0.2).skip == "no_motion"  # inside the mask
    moved = gates.gate("gate-1", _frame(square_at=20), T0 + 0.4)
    assert moved.gate == "motion" and moved.motion and moved.motion[0][0] < 140  # outside it


@pytest.mark.parametrize(("mask", "problem"), [
    ("everything", "expected a list of polygons"),
    ([[[0, 0], [10, 0]]], "polygon 0: expected"),
    ([[[0, 0], [10, 0], [10, "5"]]], "expected [x, y] points"),
    ([[[0, 0], [10, 0], [10, -5]]], "expected [x, y] points"),
    ([[[0, 0], [10, 0], [10, 5, 1]]], "expected [x, y] points"),
    ([[[0, 0], [10, 0], [True, 5]]], "expected [x, y] points"),
    ([[[0, 0], [10, 0], [10, float("inf")]]], "expected [x, y] points"),
])
def test_a_bad_motion_mask_is_refused_naming_the_camera_and_field(mask: object, problem: str) -> None:
    with pytest.raises(ConfigError) as e:
        _registry(mask)
    assert "camera[0] 'gate-1': motion_mask:" in str(e.value) and problem in str(e.value)


def test_motion_mask_defaults_to_none_and_reads_as_float_polygons() -> None:
    assert _registry([[[0, 0], [10, 0], [10, 5.5]]]).get("gate-1").motion_mask == (((0.0, 0.0), (10.0, 0.0),
                                                                                    (10.0, 5.5)),)


# ---------------------------------------------------------------------------------------------- frames v2

def _wire(**kw: object) -> FrameV2:
    base: dict[str, object] = {"camera_id": "cam", "seq": 1, "ts_capture": T0, "ts_ingest": T0, "width": 640,
                               "height": 480, "jpeg": b"\xff\xd8\xff\xd9"}
    return FrameV2.model_validate({**base, **kw})


def test_frame_v2_round_trips_its_gate_and_defaults_to_v1s_detect_everywhere() -> None:
    f = _wire(keyframe=False, gate="motion", motion=((1.0, 2.0, 30.0, 40.0),))
    assert decode(encode(f), FrameV2) == f
    plain = _wire()
    assert plain.keyframe and plain.gate == "ungated" and plain.motion == ()


@pytest.mark.parametrize(("kw", "problem"), [
    ({"gate": "no_motion"}, "expected a gate reason"),
    ({"motion": ((5.0, 5.0, 5.0, 9.0),)}, "x2 > x1"),
    ({"motion": ((0.0, 0.0, float("nan"), 9.0),)}, "finite"),
    ({"motion": ((0.0, 0.0, 1.0, 1.0),) * (MAX_MOTION_REGIONS + 1)}, "at most"),
])
def test_frame_v2_refuses_a_bad_gate(kw: dict[str, object], problem: str) -> None:
    raw = msgpack.unpackb(encode(_wire()))
    raw.update({k: list(v) if isinstance(v, tuple) else v for k, v in kw.items()})
    with pytest.raises(SchemaError, match=problem):
        decode(msgpack.packb(raw), FrameV2)


def test_a_v1_frame_is_refused_with_the_upgrade_hint() -> None:
    raw = msgpack.unpackb(encode(_wire()))
    raw["schema_id"] = "argus.frames.v1"
    for k in ("keyframe", "gate", "motion"):
        del raw[k]
    with pytest.raises(SchemaError, match="pre-motion-gating frame.*upgrade ingest and inference together"):
        decode(msgpack.packb(raw), FrameV2)


# ---------------------------------------------------------------------------------------------- where to detect

HD = (720, 1280)


@pytest.mark.parametrize(("keyframe", "motion", "tracked", "expected"), [
    (True, [(10, 10, 50, 50)], [], None),
    (False, [], [], ()),
    (False, [(600, 300, 660, 380)], [], ((470, 180, 790, 500),)),
    (False, [], [(600, 300, 660, 380)], ((470, 180, 790, 500),)),  # a track grown by its size on each side
    (False, [(0, 0, 1280, 720)], [], None),  # everything moved: the whole frame
    (False, [(10, 10, 40, 40)], [(1200, 650, 1260, 710)], ((0, 0, 320, 320), (960, 400, 1280, 720))),
], ids=["keyframe: whole frame", "nothing: nothing", "motion: one crop around it", "track: one crop around it",
        "all of it moved: whole frame", "far apart: one crop each, shifted inside the frame"])
def test_detection_regions(keyframe: bool, motion: list[tuple[int, ...]], tracked: list[tuple[int, ...]],
                           expected: tuple[tuple[int, int, int, int], ...] | None) -> None:
    got = detection_regions(keyframe=keyframe, motion=motion, tracked=tracked, frame_shape=HD)
    assert got == expected
    for r in got or ():
        assert r[2] - r[0] == DETECT_CROP and r[3] - r[1] == DETECT_CROP


# ---------------------------------------------------------------------------------------------- detecting in crops

@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> FacePipeline:
    s = load_settings(data_dir=tmp_path_factory.mktemp("gating"), metrics_port=0, ort_threads=1)
    return Resources(s, registry=CollectorRegistry()).pipeline


@pytest.fixture(scope="module")
def street() -> np.ndarray:
    """A real face pasted into a 720p frame at (700, 250)."""
    face = decode_jpeg((ASSETS / "faces" / "obama.jpg").read_bytes())
    k = 160 / face.shape[0]
    small = cv2.resize(face, (round(face.shape[1] * k), 160))
    img = np.full((720, 1280, 3), 120, np.uint8)
    img[250:250 + small.shape[0], 700:700 + small.shape[1]] = small
    return img


def test_a_face_found_in_a_crop_is_the_face_found_in_the_whole_frame(pipeline: FacePipeline,
                                                                      street: np.ndarray) -> None:
    whole, cropped, elsewhere = pipeline.locate(
        [street, street, street], regions=[None, ((560, 160, 880, 480),), ((0, 0, 320, 320),)])
    assert len(whole.detections) == 1 and len(cropped.detections) == 1
    np.testing.assert_allclose(cropped.detections.boxes, whole.detections.boxes, atol=6)  # frame pixels
    np.testing.assert_allclose(cropped.detections.landmarks, whole.detections.landmarks, atol=6)
    assert len(elsewhere.detections) == 0  # only the crop is searched
    assert cropped.crops.shape == whole.crops.shape  # aligned from the full-resolution frame


def test_a_face_in_two_overlapping_crops_is_kept_once(pipeline: FacePipeline, street: np.ndarray) -> None:
    (faces,) = pipeline.locate([street], regions=[((560, 160, 880, 480), (600, 200, 920, 520))])
    assert len(faces.detections) == 1
