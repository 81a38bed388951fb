"""Compare the two face detectors (MTCNN, BlazeFace full-range) on the real images and clips in assets/.

Prints one JSON line per detector (recall, false positives, ms/frame at 640x360 and 1280x720) and one line for the
landmark comparison (BlazeFace against MTCNN, errors normalised by MTCNN's eye distance, and the effect of
BlazeFace's estimated mouth corners). ``--out`` also writes them as one JSON document
(tools/detector_comparison.json is this script's output).

Why count-based recall: the assets come without box annotations, only with known face counts (the shared notes and
the file names say how many people each shows), so per frame ``tp = min(found, expected)``,
``fp = max(found - expected, 0)``. On multi_face.jpg (5 people) a detector that found 4 faces and 1 false one would
be scored as 5 true positives; the landmark/box agreement between the two detectors is the cross-check for that.

Timing: in-process ONNX Runtime, ``--threads`` intra-op threads (default 1, so that other work on a 2-core machine
disturbs it less), one frame per ``detect`` call (latency) and batches of 8 (throughput), median of the runs.

Usage::

    .venv/bin/python tools/measure_detectors.py --out tools/detector_comparison.json
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from argus.faces.blazeface import BlazeFaceDetector  # noqa: E402
from argus.faces.boxes import iou  # noqa: E402
from argus.faces.mtcnn import MtcnnDetector  # noqa: E402
from argus.faces.types import Detections  # noqa: E402
from argus.inference.backend import OnnxRuntimeBackend  # noqa: E402

LOG = logging.getLogger("measure_detectors")
ASSETS = REPO / "assets"

# (relative path, expected face count)
STILLS: list[tuple[str, int]] = [
    ("faces/astronaut.png", 1),
    ("faces/obama.jpg", 1),
    ("faces/obama2.jpg", 1),
    ("faces/obama3.jpg", 1),
    ("faces/biden.jpg", 1),
    ("pyfeat/multi_face.jpg", 5),
    ("pyfeat/single_face.jpg", 1),
    ("pyfeat/0-f1-su-ph.jpg", 1),
    ("pyfeat/0-f15-hao-ph.jpg", 1),
    ("pyfeat/15-f13-anc-ph.jpg", 1),
    ("pyfeat/45-m7-di-ph.jpg", 1),
    ("pyfeat/free-mountain-vector-01.jpg", 0),
]
# (relative path, expected faces per frame, frame step)
CLIPS: list[tuple[str, int, int]] = [
    ("pyfeat/WolfgangLanger_Pexels.mp4", 1, 30),
    ("pyfeat/no_face.mp4", 0, 10),
]
# 5-point alignment template of the 150-px embedder crop (shared notes, models.md)
TEMPLATE_150 = np.array(
    [[47.30, 45.36], [101.54, 45.24], [74.59, 78.14], [49.53, 101.39], [101.58, 100.37]], np.float64
)
POINTS = ("left_eye", "right_eye", "nose", "left_mouth", "right_mouth")


def load_dataset() -> list[tuple[str, np.ndarray, int]]:
    items: list[tuple[str, np.ndarray, int]] = []
    for rel, n in STILLS:
        img = cv2.imread(str(ASSETS / rel), cv2.IMREAD_COLOR)
        if img is None:
            raise SystemExit(f"cannot read {ASSETS / rel}")
        items.append((rel, img, n))
    for rel, n, step in CLIPS:
        cap = cv2.VideoCapture(str(ASSETS / rel))
        i = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if i % step == 0:
                items.append((f"{rel}#{i}", frame, n))
            i += 1
        cap.release()
    return items


def count_scores(dets: Sequence[Detections], expected: Sequence[int]) -> dict[str, Any]:
    tp = sum(min(len(d), e) for d, e in zip(dets, expected, strict=True))
    fp = sum(max(len(d) - e, 0) for d, e in zip(dets, expected, strict=True))
    total = sum(expected)
    return {
        "frames": len(dets),
        "faces_expected": total,
        "true_positives": tp,
        "recall": round(tp / total, 4) if total else None,
        "false_positives": fp,
        "frames_with_wrong_count": sum(len(d) != e for d, e in zip(dets, expected, strict=True)),
    }


def time_detector(detect: Callable[[list[np.ndarray]], list[Detections]], frames: list[np.ndarray]) -> dict[str, float]:
    """Median ms per frame, one frame per call and batches of 8 (after one warm-up call of each)."""
    detect(frames[:1])
    detect(frames[:8])
    single: list[float] = []
    for f in frames:
        t0 = time.perf_counter()
        detect([f])
        single.append((time.perf_counter() - t0) * 1000.0)
    batched: list[float] = []
    for start in range(0, len(frames) - 7, 8):
        t0 = time.perf_counter()
        detect(frames[start : start + 8])
        batched.append((time.perf_counter() - t0) * 1000.0 / 8)
    return {
        "ms_per_frame_batch1": round(statistics.median(single), 2),
        "ms_per_frame_batch8": round(statistics.median(batched), 2) if batched else float("nan"),
    }


def timing_frames(items: list[tuple[str, np.ndarray, int]], size: tuple[int, int], n: int) -> list[np.ndarray]:
    """Real frames with faces (the crying/laughing clip) resized to ``size``; the cost of MTCNN depends on content."""
    src = [img for name, img, e in items if name.startswith("pyfeat/WolfgangLanger") and e > 0]
    src = (src * (n // max(len(src), 1) + 1))[:n]
    return [cv2.resize(f, size, interpolation=cv2.INTER_LINEAR) for f in src]


def small_face_recall(det: Any, group: np.ndarray, face_px: float) -> dict[str, int]:
    """Faces found (of 5) when the group photo is shrunk and pasted into a grey 1280x720 frame, keyed by the
    approximate face width in frame pixels: where each detector stops seeing people who are far away."""
    out: dict[str, int] = {}
    for s in (1.0, 0.8, 0.65, 0.5, 0.4, 0.3):
        img = cv2.resize(group, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        frame = np.full((720, 1280, 3), 114, np.uint8)
        h, w = img.shape[:2]
        y0, x0 = (720 - h) // 2, (1280 - w) // 2
        frame[y0 : y0 + h, x0 : x0 + w] = img
        out[f"{round(face_px * s)}px"] = min(len(det.detect([frame])[0]), 5)
    return out


def _similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    m, _ = cv2.estimateAffinePartial2D(src.astype(np.float32), dst.astype(np.float32), method=cv2.LMEDS)
    if m is None:
        raise RuntimeError("could not fit a similarity transform")
    return np.asarray(m, np.float64)


def alignment_shift(lm_ref: np.ndarray, lm_test: np.ndarray) -> float:
    """Mean displacement (px of the 150-px crop) of the crop's 4 corners and centre between the two alignments.

    This is what the embedder would see differently: the crop cut with ``lm_test`` landmarks, mapped into the crop
    the reference landmarks give.
    """
    a = _similarity(lm_ref, TEMPLATE_150)
    b = _similarity(lm_test, TEMPLATE_150)
    a3 = np.vstack([a, [0, 0, 1]])
    pts = np.array([[0, 0], [150, 0], [0, 150], [150, 150], [75, 75]], np.float64)
    # crop pixel -> frame pixel with test alignment -> crop pixel with reference alignment
    b_inv = np.linalg.inv(np.vstack([b, [0, 0, 1]]))
    homog = np.hstack([pts, np.ones((len(pts), 1))])
    frame_pts = homog @ b_inv.T
    back = frame_pts @ a3.T
    return float(np.mean(np.linalg.norm(back[:, :2] - pts, axis=1)))


def mouth_frame(lm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mouth centre and the eye-aligned axes (u: left eye -> right eye, v: u turned 90 degrees towards the chin)."""
    u = lm[:, 1] - lm[:, 0]
    v = np.stack([-u[:, 1], u[:, 0]], axis=1)
    m = (lm[:, 3] + lm[:, 4]) * 0.5
    return m, u, v


def corners(m: np.ndarray, u: np.ndarray, v: np.ndarray, half_width: float, offset: float) -> np.ndarray:
    return np.stack([m - half_width * u + offset * v, m + half_width * u + offset * v], axis=1)


def fit_mouth(lm_mtcnn: np.ndarray, lm_blaze: np.ndarray) -> tuple[float, float]:
    """Least-squares half width and chin-ward offset (fractions of the eye distance) that map BlazeFace's mouth
    centre and eye vector onto MTCNN's mouth corners."""
    m, u, v = mouth_frame(lm_blaze)
    uu = np.sum(u * u, axis=1)
    dl = lm_mtcnn[:, 3] - m
    dr = lm_mtcnn[:, 4] - m
    a = (np.sum(dr * u, 1) - np.sum(dl * u, 1)) / (2 * uu)
    b = (np.sum(dr * v, 1) + np.sum(dl * v, 1)) / (2 * uu)
    return float(np.mean(a)), float(np.mean(b))


def landmark_errors(lm_ref: np.ndarray, lm_test: np.ndarray) -> dict[str, Any]:
    eye = np.linalg.norm(lm_ref[:, 1] - lm_ref[:, 0], axis=1)
    err = np.linalg.norm(lm_test - lm_ref, axis=2) / eye[:, None]
    return {
        "mean_nme": round(float(err.mean()), 4),
        "per_point_nme": {p: round(float(err[:, k].mean()), 4) for k, p in enumerate(POINTS)},
        "eyes_nose_nme": round(float(err[:, :3].mean()), 4),
        "mean_alignment_shift_px_150": round(
            float(np.mean([alignment_shift(r, t) for r, t in zip(lm_ref, lm_test, strict=True)])), 2
        ),
    }


def compare_landmarks(
    items: list[tuple[str, np.ndarray, int]],
    det_m: list[Detections],
    det_b: list[Detections],
    blaze: BlazeFaceDetector,
) -> dict[str, Any]:
    """Match faces across detectors (IoU > 0.5) and compare landmarks with MTCNN as the reference."""
    ref: list[np.ndarray] = []
    test: list[np.ndarray] = []
    box_iou: list[float] = []
    is_clip: list[bool] = []
    for (name, _img, _e), dm, db in zip(items, det_m, det_b, strict=True):
        if len(dm) == 0 or len(db) == 0:
            continue
        ov = iou(dm.boxes, db.boxes)
        for i in range(len(dm)):
            j = int(np.argmax(ov[i]))
            if ov[i, j] > 0.5:
                ref.append(dm.landmarks[i].astype(np.float64))
                test.append(db.landmarks[j].astype(np.float64))
                box_iou.append(float(ov[i, j]))
                is_clip.append("#" in name)
    if not ref:
        return {"matched_faces": 0}
    lm_m, lm_b = np.stack(ref), np.stack(test)
    clip = np.asarray(is_clip)
    # BlazeFace's own mouth centre: undo the configured shift of the estimated corners
    m, u, v = mouth_frame(lm_b)
    m = m - blaze.mouth_offset * v
    ours = landmark_errors(lm_m, lm_b)  # what BlazeFaceDetector returns, as configured
    # the approximation alone: MTCNN's own mouth corners replaced by its corner midpoint +/- half_width * eye vector
    mm, mu, mv = mouth_frame(lm_m)
    approx_on_mtcnn = lm_m.copy()
    approx_on_mtcnn[:, 3:5] = corners(mm, mu, mv, blaze.mouth_half_width, 0.0)
    # fit on the clip frames (one person), evaluate on the stills (eleven other people)
    lm_b_raw = lm_b.copy()
    lm_b_raw[:, 3:5] = corners(m, u, v, 0.5, 0.0)  # any symmetric pair: fit_mouth only uses the midpoint and eyes
    fit_a, fit_b = fit_mouth(lm_m[clip], lm_b_raw[clip]) if clip.any() else fit_mouth(lm_m, lm_b_raw)
    template = lm_b.copy()
    template[:, 3:5] = corners(m, u, v, 0.48, 0.0)
    still = ~clip
    return {
        "matched_faces": len(ref),
        "matched_stills": int(still.sum()),
        "mean_box_iou": round(float(np.mean(box_iou)), 4),
        "blazeface_vs_mtcnn": ours,
        "mouth_approx_alone_on_mtcnn_points": landmark_errors(lm_m, approx_on_mtcnn),
        "mouth_fit_on_clip": {"half_width": round(fit_a, 4), "chin_offset": round(fit_b, 4)},
        "mouth_configured": {"half_width": blaze.mouth_half_width, "chin_offset": blaze.mouth_offset},
        "blazeface_vs_mtcnn_on_stills": landmark_errors(lm_m[still], lm_b[still]) if still.any() else None,
        "blazeface_template_mouth_0.48_vs_mtcnn_on_stills": (
            landmark_errors(lm_m[still], template[still]) if still.any() else None
        ),
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    ap.add_argument("--timing-frames", type=int, default=24, help="frames per timing run")
    ap.add_argument("--out", type=Path, help="also write all lines as one JSON document here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    backend = OnnxRuntimeBackend(model_repository=REPO / "triton_models", intra_op_threads=args.threads)
    detectors: dict[str, Any] = {
        "mtcnn": MtcnnDetector(backend),
        "blazeface": BlazeFaceDetector(backend),
    }
    settings = {
        "mtcnn": {k: getattr(detectors["mtcnn"], k) for k in ("min_face_size", "thresholds", "max_side")},
        "blazeface": {
            k: getattr(detectors["blazeface"], k)
            for k in ("score_threshold", "iou_threshold", "nms", "min_face_size", "mouth_half_width", "mouth_offset")
        },
    }
    items = load_dataset()
    expected = [e for _n, _i, e in items]
    LOG.info("%d frames (%d stills), %d faces expected", len(items), len(STILLS), sum(expected))

    group_ref = detectors["mtcnn"].detect([next(img for n, img, _e in items if n == "pyfeat/multi_face.jpg")])[0]
    face_px = float(np.mean(group_ref.boxes[:, 2] - group_ref.boxes[:, 0]))
    results: dict[str, list[Detections]] = {}
    lines: list[dict[str, Any]] = []
    for name, det in detectors.items():
        dets = [det.detect([img])[0] for _n, img, _e in items]
        results[name] = dets
        line: dict[str, Any] = {"detector": name, "settings": settings[name], **count_scores(dets, expected)}
        line["misses"] = [n for (n, _i, e), d in zip(items, dets, strict=True) if len(d) < e]
        line["extras"] = [n for (n, _i, e), d in zip(items, dets, strict=True) if len(d) > e]
        line["min_score_of_true_frames"] = round(
            min((float(d.scores.min()) for (_n, _i, e), d in zip(items, dets, strict=True) if e and len(d)), default=0),
            4,
        )
        group = next(img for n, img, _e in items if n == "pyfeat/multi_face.jpg")
        line["faces_found_of_5_by_face_width_in_1280x720"] = small_face_recall(det, group, face_px)
        for label, size in (("640x360", (640, 360)), ("1280x720", (1280, 720))):
            frames = timing_frames(items, size, args.timing_frames)
            line[label] = time_detector(det.detect, frames)
        line["threads"] = args.threads
        line["cpu"] = platform.processor() or platform.machine()
        lines.append(line)
        print(json.dumps(line), flush=True)

    lm = {
        "comparison": "landmarks, BlazeFace vs MTCNN reference",
        **compare_landmarks(items, results["mtcnn"], results["blazeface"], detectors["blazeface"]),
    }
    lines.append(lm)
    print(json.dumps(lm), flush=True)
    if args.out:
        args.out.write_text(json.dumps(lines, indent=2) + "\n")
    backend.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
