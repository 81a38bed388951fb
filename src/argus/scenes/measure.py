"""How well a detector sees a scene's faces: recall against the truth boxes, and detections that match no face.

Why it lives next to the generator: a synthetic scene is only evidence about the real system if the real detector
finds its pasted faces about as well as it finds faces in camera footage; this is the number to re-check whenever
the pasting, the body drawing or the lighting changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from argus.faces.boxes import iou
from argus.faces.types import Detections
from argus.scenes.scene import Scene

Detect = Callable[[np.ndarray], Detections]
SIZE_BUCKETS: tuple[tuple[float, float], ...] = ((0, 40), (40, 60), (60, 100), (100, 1e9))


@dataclass(frozen=True, kw_only=True)
class Recall:
    scene: str
    frames: int
    faces: int  # truth faces counted: size >= min_size, visible >= min_visible
    found: int  # of those, matched by a detection with IoU >= iou_min
    false_detections: int  # detections overlapping no truth face (any size, occluded or not) at IoU >= iou_min
    by_size: dict[str, tuple[int, int]] = field(default_factory=dict)  # "40-60" → (found, faces)
    sunglasses: tuple[int, int] = (0, 0)  # (found, faces) among faces with sunglasses
    partly_hidden: tuple[int, int] = (0, 0)  # (found, faces) among faces >= min_size with 0.3 <= visible < min_visible

    @property
    def recall(self) -> float:
        return self.found / self.faces if self.faces else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {"scene": self.scene, "frames": self.frames, "faces": self.faces, "found": self.found,
                "recall": round(self.recall, 4) if self.faces else None,
                "false_detections": self.false_detections,
                "by_size": {k: {"found": f, "faces": n} for k, (f, n) in self.by_size.items()},
                "sunglasses": {"found": self.sunglasses[0], "faces": self.sunglasses[1]},
                "partly_hidden": {"found": self.partly_hidden[0], "faces": self.partly_hidden[1]}}


def frames_to_check(scene: Scene, count: int) -> list[int]:
    """Up to ``count`` frames spread over the scene, favouring frames with faces (empty frames only test false
    detections, so a few of them are enough)."""
    with_faces = [t.index for t in scene.truths() if t.faces]
    have = set(with_faces)
    empty = [i for i in range(scene.n_frames) if i not in have]
    n_face = min(len(with_faces), count if not empty else max(1, count * 4 // 5))
    n_empty = min(len(empty), count - n_face)
    pick = [with_faces[round(k)] for k in np.linspace(0, len(with_faces) - 1, n_face)] if n_face else []
    pick += [empty[round(k)] for k in np.linspace(0, len(empty) - 1, n_empty)] if n_empty else []
    return sorted(set(pick))


def detector_recall(scene: Scene, detect: Detect, *, frames: Sequence[int] | None = None, min_size: float = 40.0,
                    min_visible: float = 0.9, iou_min: float = 0.4) -> Recall:
    idx = list(frames) if frames is not None else frames_to_check(scene, 40)
    faces = found = false = 0
    buckets = {f"{lo:g}-{hi:g}" if hi < 1e9 else f"{lo:g}+": [0, 0] for lo, hi in SIZE_BUCKETS}
    sun = [0, 0]
    part = [0, 0]
    for i in idx:
        img, truth = scene.render(i)
        det = detect(img)
        boxes = np.array([f.box for f in truth.faces], np.float64).reshape(-1, 4)
        ov = iou(boxes, det.boxes) if len(det) and len(boxes) else np.zeros((len(boxes), len(det)))
        false += int(np.sum(ov.max(axis=0, initial=0.0) < iou_min)) if len(det) else 0
        for k, f in enumerate(truth.faces):
            hit = bool(ov.shape[1] and ov[k].max() >= iou_min)
            for (lo, hi), key in zip(SIZE_BUCKETS, buckets, strict=True):
                if lo <= f.size < hi and f.visible >= min_visible:
                    buckets[key][0] += hit
                    buckets[key][1] += 1
            if f.size >= min_size and 0.3 <= f.visible < min_visible:
                part[0] += hit
                part[1] += 1
            if f.size < min_size or f.visible < min_visible:
                continue
            faces += 1
            found += hit
            if f.sunglasses:
                sun[0] += hit
                sun[1] += 1
    return Recall(scene=scene.name, frames=len(idx), faces=faces, found=found, false_detections=false,
                  by_size={k: (v[0], v[1]) for k, v in buckets.items()}, sunglasses=(sun[0], sun[1]),
                  partly_hidden=(part[0], part[1]))
