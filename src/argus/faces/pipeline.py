"""One call from decoded frames to analysed faces: detect → align → embed + emotion → quality.

Every model sees one batched call per micro-batch (all faces of all frames together), which is what makes
Triton's dynamic batching and a GPU worthwhile. Pre/post-processing is numpy here, shared by both backends, so
in-process ONNX Runtime and Triton give the same faces for the same frames.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from argus.errors import ConfigError, InputError
from argus.faces.align import align_faces, emotion_crops
from argus.faces.embedder import FaceEmbedder
from argus.faces.emotion import EmotionClassifier
from argus.faces.quality import assess
from argus.faces.types import Detections, Face, FaceQuality, check_array
from argus.imaging import as_bgr
from argus.inference.backend import InferenceBackend

EMBEDDER_NAME = "dlib-resnet-v1"


class FacePipeline:
    def __init__(
        self,
        *,
        backend: InferenceBackend,
        detector: str = "mtcnn",
        min_face_size: int = 40,
        det_threshold: float = 0.95,
    ) -> None:
        self.backend = backend
        self.detector_name = detector
        self.embedder_name = EMBEDDER_NAME
        self._detect: Callable[[Sequence[np.ndarray]], list[Detections]]
        if detector == "mtcnn":
            from argus.faces.mtcnn import MtcnnDetector

            self._detect = MtcnnDetector(backend, min_face_size=min_face_size,
                                         thresholds=(0.6, 0.7, det_threshold)).detect
        elif detector == "blazeface":
            from argus.faces.blazeface import BlazeFaceDetector

            self._detect = BlazeFaceDetector(backend, min_face_size=float(min_face_size)).detect
        else:
            raise ConfigError(f"detector: expected 'mtcnn' or 'blazeface', got {detector!r}")
        self.embedder = FaceEmbedder(backend)
        self.emotion = EmotionClassifier(backend)

    @staticmethod
    def models_for(detector: str) -> tuple[str, ...]:
        """Every model a pipeline with ``detector`` calls, so a server backend can check each is ready at start-up
        instead of failing on the first frame."""
        from argus.faces import blazeface, embedder, emotion, mtcnn

        detectors = {"mtcnn": (mtcnn.PNET, mtcnn.RNET, mtcnn.ONET), "blazeface": (blazeface.MODEL,)}
        if detector not in detectors:
            raise ConfigError(f"detector: expected one of {sorted(detectors)}, got {detector!r}")
        return (*detectors[detector], embedder.MODEL, emotion.MODEL)

    def detect(self, frame: np.ndarray) -> Detections:
        """Detections for one frame (what ``argus eval faces`` needs)."""
        return self._detect([as_bgr(frame)])[0]

    def locate(self, frames: Sequence[np.ndarray]) -> list[FrameFaces]:
        """Detect, align and grade every face of every frame (one batched detector pass), without embedding:
        the tracker decides which faces are worth the embedder (argus.tracking.should_embed)."""
        bgr = [as_bgr(f, where=f"frame {i}") for i, f in enumerate(frames)]
        dets = self._detect(bgr) if bgr else []
        out = []
        for frame, d in zip(bgr, dets, strict=True):
            crops = align_faces(frame, d.landmarks)
            out.append(FrameFaces(
                detections=d, crops=crops, grey=emotion_crops(frame, d.boxes),
                quality=tuple(assess(d.boxes[j], crops[j]) for j in range(len(d))),
            ))
        return out

    def process(self, frames: Sequence[np.ndarray]) -> list[list[Face]]:
        """Faces per frame, in frame order, every face embedded; a frame without faces gives an empty list."""
        located = self.locate(frames)
        if not any(len(f.detections) for f in located):
            return [[] for _ in located]
        crops = np.concatenate([f.crops for f in located])
        embeddings = self.embedder.embed(crops)
        emotions = self.emotion.classify(np.concatenate([f.grey for f in located]))
        out: list[list[Face]] = []
        i = 0
        for f in located:
            d = f.detections
            faces: list[Face] = []
            for j in range(len(d)):
                faces.append(Face(
                    box=d.boxes[j], landmarks=d.landmarks[j], det_score=float(d.scores[j]),
                    embedding=embeddings[i], emotion=emotions[i].astype(np.float32),
                    quality=f.quality[j], crop=crops[i],
                ))
                i += 1
            out.append(faces)
        return out


@dataclass(frozen=True, kw_only=True)
class FrameFaces:
    """One frame's faces before embedding: detections, the aligned crops the embedder would see, the grey crops the
    emotion model sees, and each face's quality."""

    detections: Detections
    crops: np.ndarray  # (N, 150, 150, 3) BGR uint8
    grey: np.ndarray  # (N, 64, 64) uint8
    quality: tuple[FaceQuality, ...]

    def __post_init__(self) -> None:
        n = len(self.detections)
        check_array("crops", self.crops, (n, None, None, 3), np.uint8)
        check_array("grey", self.grey, (n, None, None), np.uint8)
        if len(self.quality) != n:
            raise InputError(f"quality: expected {n} entries, got {len(self.quality)}")
