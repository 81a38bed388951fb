"""A face that walks in and then stands still for a minute is still found with motion gating on: the background
absorbs the still person within seconds (their frames are skipped in ingest), and the periodic keyframe
(``ARGUS_MOTION_KEYFRAME_S``) runs the detector on the whole frame, where the face is."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry

from argus.config import load_settings
from argus.faces.boxes import iou
from argus.ingest.gating import CameraGates
from argus.runtime.resources import Resources
from argus.scenes import Person, Scene, default_bank

T0 = 1_767_225_600.0
KEYFRAME_S = 5.0
WALK_IN_S = 4.0
STAND_S = 60.0
FPS = 5.0


def _still_scene() -> Scene:
    bank = default_bank()
    return Scene(name="still_face", seed=0, bank=bank, width=640, height=360, fps=FPS, duration=WALK_IN_S + 1.0,
                 people=(Person(identity=bank.identities[0], t0=0.0, t1=WALK_IN_S + 1.0, x0=-0.05, x1=0.5,
                                size0=100.0, size1=100.0, body=False, via=((0.8, 0.5, 100.0),)),))


def _frames(scene: Scene) -> Iterator[tuple[float, np.ndarray, np.ndarray]]:
    """(scene seconds, frame, truth face boxes): the generated walk-in, then the person standing still for a
    minute — the walk-in's last frame held, with fresh sensor noise on every frame (the generator animates a
    walking bob even at a standstill, so the hold is the truly motionless person)."""
    rng = np.random.default_rng(0)
    last: tuple[np.ndarray, np.ndarray] | None = None
    for _, ts, img, truth in scene.frames():
        last = (img, np.array([f.box for f in truth.faces], np.float64).reshape(-1, 4))
        yield ts - scene.start_ts, img, last[1]
    assert last is not None
    held, boxes = last
    for k in range(1, round(STAND_S * FPS) + 1):
        noise = rng.normal(0.0, 2.0, held.shape)
        yield scene.duration + (k - 1) / FPS, np.clip(held + noise, 0, 255).astype(np.uint8), boxes


def test_a_face_standing_still_for_a_minute_is_found_by_the_periodic_keyframes(tmp_path: Path) -> None:
    scene = _still_scene()
    pipeline = Resources(load_settings(data_dir=tmp_path, metrics_port=0, ort_threads=1),
                         registry=CollectorRegistry()).pipeline
    gates = CameraGates([], enabled=True, keyframe_s=KEYFRAME_S)
    gate_at: dict[float, str] = {}
    keyframes_found: list[tuple[float, bool]] = []  # (scene s, face detected) per keyframe while standing
    for t, img, want in _frames(scene):
        gate = gates.gate("cam", img, T0 + t)
        gate_at[t] = gate.gate
        if t < scene.duration or not gate.keyframe:
            continue  # only the periodic pass is checked here; motion frames go to crops (test_motion_gating)
        (faces,) = pipeline.locate([img])
        hit = bool(len(faces.detections)) and float(iou(want, faces.detections.boxes).max()) >= 0.4
        keyframes_found.append((t, hit))
    # the background absorbs the still person in ~20 s (alpha 0.02 per frame); from then on the camera is still:
    # nearly every frame is skipped in ingest, and what is published is the periodic keyframe
    late = [g for t, g in gate_at.items() if t >= scene.duration + 30.0]
    assert late.count("no_motion") >= 0.9 * len(late), late
    assert {g for g in late if g != "no_motion"} == {"periodic_full_frame"}
    # ... and every keyframe of the minute finds the face: at least once every ARGUS_MOTION_KEYFRAME_S
    times = [t for t, _ in keyframes_found]
    assert len(times) >= STAND_S / KEYFRAME_S - 1 and max(np.diff(times)) <= KEYFRAME_S + 1e-6, times
    assert all(hit for _, hit in keyframes_found), keyframes_found


def test_without_keyframes_the_still_face_is_never_looked_at_again(tmp_path: Path) -> None:
    """The control: the same minute with no periodic pass publishes (almost) nothing once the person stands."""
    scene = _still_scene()
    gates = CameraGates([], enabled=True, keyframe_s=1e9)
    published = [t for t, img, _ in _frames(scene) if gates.gate("cam", img, T0 + t).publish]
    assert not [t for t in published if t >= scene.duration + 30.0], published
