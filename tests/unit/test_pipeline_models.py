"""The model list a server backend checks at start-up is exactly what the pipeline calls on a real face."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from argus.errors import ConfigError
from argus.faces.pipeline import FacePipeline
from argus.imaging import read_image
from argus.inference.backend import OnnxRuntimeBackend


class RecordingBackend:
    name = "recording"

    def __init__(self, inner: OnnxRuntimeBackend) -> None:
        self.inner = inner
        self.called: set[str] = set()

    def infer(self, model: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.called.add(model)
        return self.inner.infer(model, inputs)

    def close(self) -> None:
        pass


@pytest.mark.parametrize("detector", ["mtcnn", "blazeface", "centerface"])
def test_models_for_lists_every_model_the_pipeline_calls(detector: str, ort_backend: OnnxRuntimeBackend,
                                                         assets: Path) -> None:
    backend = RecordingBackend(ort_backend)
    faces = FacePipeline(backend=backend, detector=detector).process([read_image(str(assets / "faces/obama.jpg"))])
    assert len(faces[0]) == 1  # a face was found, so every stage of the pipeline ran
    assert backend.called == set(FacePipeline.models_for(detector))


def test_an_unknown_detector_has_no_model_list() -> None:
    with pytest.raises(ConfigError,
                       match="detector: expected one of \\['blazeface', 'centerface', 'mtcnn'\\], got 'yolo'"):
        FacePipeline.models_for("yolo")


def test_with_rules_on_the_model_list_adds_the_mesh_the_stage_calls(ort_backend: OnnxRuntimeBackend,
                                                                    assets: Path) -> None:
    backend = RecordingBackend(ort_backend)
    pipeline = FacePipeline(backend=backend)
    frame = read_image(str(assets / "faces/obama.jpg"))
    located = pipeline.locate([frame])
    backend.called.clear()
    out = pipeline.read_emotions([frame], located, embedded=[{0}], emotion_tta="embedded", emotion_tta_views=4,
                                 emotion_rules=True)
    assert out.frames[0].views == (4,) and len(out.frames[0].ecrl[0]) == 3
    assert backend.called == {"face_emotion", "face_mesh"}
    assert backend.called <= set(FacePipeline.models_for("mtcnn", emotion_rules=True))
    assert "face_mesh" not in FacePipeline.models_for("mtcnn")
