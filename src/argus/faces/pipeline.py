"""One call from decoded frames to analysed faces: detect → align → embed + emotion → quality.

Every model sees one batched call per micro-batch (all faces of all frames together), which is what makes
Triton's dynamic batching and a GPU worthwhile. Pre/post-processing is numpy here, shared by both backends, so
in-process ONNX Runtime and Triton give the same faces for the same frames.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import numpy as np

from argus import ecrl
from argus.errors import ConfigError, InputError
from argus.faces.align import align_faces, emotion_crops
from argus.faces.boxes import nms
from argus.faces.embedder import FaceEmbedder
from argus.faces.emotion import EmotionClassifier
from argus.faces.mesh import FaceMesh, FaceMeshes, mesh_crops
from argus.faces.quality import assess
from argus.faces.tta import MAX_VIEWS
from argus.faces.types import EMOTIONS, Detections, Face, FaceQuality, check_array
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
        elif detector == "centerface":
            from argus.faces.centerface import CenterFaceDetector

            self._detect = CenterFaceDetector(backend, min_face_size=float(min_face_size)).detect
        else:
            raise ConfigError(f"detector: expected 'mtcnn', 'blazeface' or 'centerface', got {detector!r}")
        self.embedder = FaceEmbedder(backend)
        self.emotion = EmotionClassifier(backend)
        self.mesh = FaceMesh(backend)  # only ECRL calls it (read_emotions(emotion_rules=True)); the session is lazy

    @staticmethod
    def models_for(detector: str, *, emotion_rules: bool = False) -> tuple[str, ...]:
        """Every model a pipeline with ``detector`` calls, so a server backend can check each is ready at start-up
        instead of failing on the first frame; ``emotion_rules`` (the setting) adds FaceMesh, which ECRL needs."""
        from argus.faces import blazeface, centerface, embedder, emotion, mesh, mtcnn

        detectors = {"mtcnn": (mtcnn.PNET, mtcnn.RNET, mtcnn.ONET), "blazeface": (blazeface.MODEL,),
                     "centerface": (centerface.MODEL,)}
        if detector not in detectors:
            raise ConfigError(f"detector: expected one of {sorted(detectors)}, got {detector!r}")
        return (*detectors[detector], embedder.MODEL, emotion.MODEL, *((mesh.MODEL,) if emotion_rules else ()))

    def detect(self, frame: np.ndarray) -> Detections:
        """Detections for one frame (what ``argus eval faces`` needs)."""
        return self._detect([as_bgr(frame)])[0]

    def locate(self, frames: Sequence[np.ndarray], *,
               regions: Sequence[Sequence[Region] | None] | None = None) -> list[FrameFaces]:
        """Detect, align and grade every face of every frame (one batched detector pass), without embedding:
        the tracker decides which faces are worth the embedder (argus.tracking.should_embed).

        ``regions`` (one entry per frame; argus.motion.detection_regions): ``None`` detects on the whole frame, a
        sequence of (x1, y1, x2, y2) crops detects only inside them (none: no face). All crops of all frames go to
        the detector together; their faces are moved back to frame pixels and, where crops overlap, the weaker of
        two boxes over one face is dropped. Alignment, grey crops and quality always read the full-resolution
        frame, so a face found in a crop is embedded exactly as one found on the whole frame.
        """
        bgr = [as_bgr(f, where=f"frame {i}") for i, f in enumerate(frames)]
        if regions is not None and len(regions) != len(bgr):
            raise InputError(f"regions: expected one entry per frame ({len(bgr)}), got {len(regions)}")
        inputs: list[np.ndarray] = []
        owner: list[tuple[int, int, int]] = []  # (frame, x1, y1) per detector input
        for i, frame in enumerate(bgr):
            wanted = None if regions is None else regions[i]
            if wanted is None:
                inputs.append(frame)
                owner.append((i, 0, 0))
                continue
            h, w = frame.shape[:2]
            for r in wanted:
                x1, y1, x2, y2 = max(0, int(r[0])), max(0, int(r[1])), min(w, int(r[2])), min(h, int(r[3]))
                if x2 - x1 < 12 or y2 - y1 < 12:  # smaller than any detector's window: nothing to find
                    continue
                inputs.append(np.ascontiguousarray(frame[y1:y2, x1:x2]))
                owner.append((i, x1, y1))
        found = self._detect(inputs) if inputs else []
        parts: list[list[Detections]] = [[] for _ in bgr]
        for (i, x1, y1), d in zip(owner, found, strict=True):
            parts[i].append(_shifted(d, x1, y1))
        out = []
        for frame, ds in zip(bgr, parts, strict=True):
            d = _merge(ds)
            crops = align_faces(frame, d.landmarks)
            out.append(FrameFaces(
                detections=d, crops=crops, grey=emotion_crops(frame, d.boxes),
                quality=tuple(assess(d.boxes[j], crops[j]) for j in range(len(d))),
            ))
        return out

    def read_emotions(
        self,
        frames: Sequence[np.ndarray],
        located: Sequence[FrameFaces],
        *,
        embedded: Sequence[Collection[int]],
        emotion_tta: str = "off",
        emotion_tta_views: int = 1,
        emotion_rules: bool = False,
    ) -> BatchEmotions:
        """Emotion of every face of a micro-batch, and ECRL features of the ``embedded`` ones (per frame: the
        indices of the faces that reach the matcher), as the inference stage's settings ask.

        ``emotion_tta`` "embedded" gives the embedded faces ``emotion_tta_views`` augmented views (paper 003) and the
        rest the plain model — TTA costs about ``views`` times the model, so it is spent where a name and an alert
        can follow; "all" gives every face the views, "off" none. Either way all faces x views of the whole batch go
        to the emotion model together (one call up to 128 rows). ``emotion_rules``: FaceMesh on the embedded faces
        (the frame, the detector box and its 5 points, as :mod:`argus.faces.mesh` expects; one call for the
        batch) and paper 002's three features, absolute (the track's neutral baseline is the matcher's business).
        A face whose mesh cannot be read gets ``ecrl=()`` and a failure reason instead of failing the batch:
        ``"mesh"`` (its frame's boxes were refused), ``"no_face"`` (presence below 0.5: the crop holds no face
        the model recognises), ``"features"`` (the points give no usable geometry: :func:`argus.ecrl.features`).
        """
        if emotion_tta not in ("off", "embedded", "all"):
            raise ConfigError(f"emotion_tta: expected 'off', 'embedded' or 'all', got {emotion_tta!r}")
        if isinstance(emotion_tta_views, bool) or not isinstance(emotion_tta_views, int) \
                or not 1 <= emotion_tta_views <= MAX_VIEWS:
            raise ConfigError(f"emotion_tta_views: expected an integer from 1 to {MAX_VIEWS} (the views "
                              f"argus.faces.tta defines), got {emotion_tta_views!r}")
        if len(frames) != len(located) or len(embedded) != len(located):
            raise InputError(f"read_emotions: expected one frame and one embedded set per located frame "
                             f"({len(located)}), got {len(frames)} frames and {len(embedded)} sets")
        t0 = time.perf_counter()
        views: list[np.ndarray] = []
        for f, chosen in zip(located, embedded, strict=True):
            n = len(f.detections)
            v = np.ones(n, np.int64)
            if emotion_tta == "all":
                v[:] = emotion_tta_views
            elif emotion_tta == "embedded" and chosen:
                v[np.asarray(sorted(chosen), np.int64)] = emotion_tta_views
            views.append(v)
        all_views = np.concatenate(views) if views else np.zeros(0, np.int64)
        probs = (self.emotion.classify(np.concatenate([f.grey for f in located]), views=all_views)
                 if all_views.size else np.zeros((0, len(EMOTIONS)), np.float32))
        t1 = time.perf_counter()
        ecrl_out: list[list[tuple[float, ...]]] = [[() for _ in range(len(f.detections))] for f in located]
        failed: list[list[str | None]] = [[None] * len(f.detections) for f in located]
        if emotion_rules:
            wanted = [sorted(c) for c in embedded]
            crops, ok = [], []
            for i, (frame, f, idx) in enumerate(zip(frames, located, wanted, strict=True)):
                if not idx:
                    continue
                d = f.detections
                try:
                    crops.append(mesh_crops(frame, d.boxes[idx], d.landmarks[idx]))
                    ok.append(i)
                except InputError:
                    for j in idx:
                        failed[i][j] = "mesh"
            meshes: list[FaceMeshes] = self.mesh.run(crops) if crops else []
            for i, m in zip(ok, meshes, strict=True):
                for row, j in enumerate(wanted[i]):
                    if m.presence[row] < 0.5:
                        failed[i][j] = "no_face"
                        continue
                    try:
                        feats = ecrl.features(m.points[row])
                    except InputError:
                        failed[i][j] = "features"
                        continue
                    ecrl_out[i][j] = (feats.brow_height, feats.brow_width, feats.mouth_curvature)
        t2 = time.perf_counter()
        out, k = [], 0
        for f, v, e, bad in zip(located, views, ecrl_out, failed, strict=True):
            n = len(f.detections)
            out.append(FrameEmotions(probs=probs[k : k + n], views=tuple(int(x) for x in v), ecrl=tuple(e),
                                     ecrl_failed=tuple(bad)))
            k += n
        return BatchEmotions(frames=tuple(out), emotion_seconds=t1 - t0, mesh_seconds=t2 - t1)

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


#: A detector region in frame pixels: x1, y1, x2, y2 (x2/y2 exclusive), as argus.motion.detection_regions gives.
Region = tuple[int, int, int, int]
#: Two boxes over one face from overlapping crops: intersection over the smaller box above this keeps only one.
CROP_DUPLICATE_OVERLAP = 0.5


def _shifted(d: Detections, dx: int, dy: int) -> Detections:
    if not (dx or dy) or not len(d):
        return d
    off = np.array([dx, dy], np.float32)
    return Detections(boxes=d.boxes + np.tile(off, 2), scores=d.scores, landmarks=d.landmarks + off)


def _merge(parts: Sequence[Detections]) -> Detections:
    """One frame's detections from its crops; a face seen by two overlapping crops is kept once (best score)."""
    if not parts:
        return Detections.empty()
    if len(parts) == 1:
        return parts[0]
    boxes = np.concatenate([p.boxes for p in parts])
    scores = np.concatenate([p.scores for p in parts])
    marks = np.concatenate([p.landmarks for p in parts])
    keep = nms(boxes, scores, CROP_DUPLICATE_OVERLAP, mode="min") if len(boxes) else np.zeros(0, np.int64)
    return Detections(boxes=np.ascontiguousarray(boxes[keep]), scores=np.ascontiguousarray(scores[keep]),
                      landmarks=np.ascontiguousarray(marks[keep]))


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


@dataclass(frozen=True, kw_only=True)
class FrameEmotions:
    """One frame's faces after :meth:`FacePipeline.read_emotions`, in detection order.

    probs: (N, 7) float32 over EMOTIONS; views: the views averaged into each row (1 = plain model); ecrl: paper
    002's (brow height, brow width, mouth curvature) for a face meshed and read, else ``()``; ecrl_failed: why a
    meshed face has no features ("mesh", "no_face", "features"), ``None`` for the rest.
    """

    probs: np.ndarray
    views: tuple[int, ...]
    ecrl: tuple[tuple[float, ...], ...]
    ecrl_failed: tuple[str | None, ...]


@dataclass(frozen=True, kw_only=True)
class BatchEmotions:
    """Every frame's :class:`FrameEmotions` and what the emotion model and the mesh + features cost the batch."""

    frames: tuple[FrameEmotions, ...]
    emotion_seconds: float
    mesh_seconds: float
