"""Face detectors on the generated scenes: recall by face size, CPU ms per 720p frame, model calls per frame.

Why: the detector is most of a frame's cost, and the three we ship trade differently — MTCNN (the baseline and the
default) finds small faces with an image pyramid of many calls, BlazeFace is one cheap call on a 192-px tile and
misses small faces, CenterFace is one fully-convolutional call on a 640 x 384 tile. Issue 12 asks which should
be the default and whether CenterFace earns its place; these are the numbers.

All detectors see the same rendered 720p frames of ``approach`` (one face at a time, 24 → 200 px, the size sweep)
and ``crowd`` (20 people, many faces at once, some partly hidden), frames picked by
:func:`argus.scenes.measure.frames_to_check`; recall is :func:`argus.scenes.measure.detector_recall` (IoU >= 0.4 with
the truth box, faces >= 90 % visible, by box width). Each detector is run as small-face-capable as it goes
(MTCNN ``min_face_size`` 20, the others no size floor) and MTCNN also as the pipeline builds it by default
(``ARGUS_MIN_FACE_SIZE=40``, the baseline). Time is CPU time (``time.process_time``; ONNX Runtime on one
intra-op thread) per frame including pre/post-processing, the median of alternating rounds, so load from other
processes on the shared machine costs every detector alike. Calls: backend ``infer`` calls per frame for one
frame at a time and for 8 frames (8 cameras) per ``detect`` call — what reaches Triton.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from argus.faces.blazeface import BlazeFaceDetector
from argus.faces.centerface import CenterFaceDetector
from argus.faces.mtcnn import MtcnnDetector
from argus.faces.types import Detections
from argus.inference.backend import OnnxRuntimeBackend
from argus.scenes import approach, crowd
from argus.scenes.measure import Recall, detector_recall, frames_to_check
from argus.scenes.scene import FrameTruth, Scene
from bench.common import REPO_ROOT, Context, Result

BATCH = 8  # frames (cameras) per detect call for the batched call count
BASELINE = "mtcnn"


class _CountingBackend:
    """Counts ``infer`` calls on the way to the real backend."""

    name = "counting"

    def __init__(self, inner: OnnxRuntimeBackend) -> None:
        self.inner = inner
        self.calls = 0

    def infer(self, model: str, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.calls += 1
        return self.inner.infer(model, inputs)

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class _Rendered:
    """A scene whose chosen frames are rendered once and shared by every detector (rendering costs more than
    detecting)."""

    scene: Scene
    frames: dict[int, tuple[np.ndarray, FrameTruth]]

    @property
    def name(self) -> str:
        return self.scene.name

    def render(self, index: int) -> tuple[np.ndarray, FrameTruth]:
        return self.frames[index]


def detectors(backend: _CountingBackend) -> dict[str, Callable[[Sequence[np.ndarray]], list[Detections]]]:
    return {
        "mtcnn": MtcnnDetector(backend, min_face_size=40, thresholds=(0.6, 0.7, 0.95)).detect,
        "mtcnn_min20": MtcnnDetector(backend, min_face_size=20, thresholds=(0.6, 0.7, 0.95)).detect,
        "blazeface": BlazeFaceDetector(backend).detect,
        "centerface": CenterFaceDetector(backend).detect,
    }


def cpu_ms_per_frame(fns: Mapping[str, Callable[[Sequence[np.ndarray]], object]], frames: Sequence[np.ndarray],
                     rounds: int) -> dict[str, float]:
    """Median CPU ms per frame of each detector, one frame per call, detectors alternating round by round."""
    per: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():
        fn(frames[:1])  # sessions loaded, arenas warm
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.process_time()
            for f in frames:
                fn([f])
            per[name].append((time.process_time() - t0) * 1000.0 / len(frames))
    return {k: statistics.median(v) for k, v in per.items()}


def calls_per_frame(backend: _CountingBackend, fn: Callable[[Sequence[np.ndarray]], object],
                    frames: Sequence[np.ndarray], batch: int) -> float:
    backend.calls = 0
    for i in range(0, len(frames), batch):
        fn(list(frames[i : i + batch]))
    return backend.calls / len(frames)


def _recall_at(r: Recall, key: str) -> float | None:
    found, faces = r.by_size.get(key, (0, 0))
    return found / faces if faces else None


def measure(*, frames_per_scene: int, rounds: int) -> dict[str, Any]:
    """Everything the area reports, as one plain dict (also what ``--quick`` prints)."""
    inner = OnnxRuntimeBackend(model_repository=REPO_ROOT / "triton_models", intra_op_threads=1)
    backend = _CountingBackend(inner)
    fns = detectors(backend)
    scenes = []
    for scene in (approach(seed=0), crowd(seed=0)):
        idx = frames_to_check(scene, frames_per_scene)
        scenes.append((_Rendered(scene, {i: scene.render(i) for i in idx}), idx))
    recall: dict[str, dict[str, Recall]] = {}
    for name, fn in fns.items():
        def one(img: np.ndarray, fn: Callable[[Sequence[np.ndarray]], list[Detections]] = fn) -> Detections:
            return fn([img])[0]
        recall[name] = {r.name: detector_recall(cast(Scene, r), one, frames=idx, min_size=40.0)
                        for r, idx in scenes}
    frames = [img for r, _ in scenes for img, _ in r.frames.values()]
    ms = cpu_ms_per_frame(fns, frames, rounds)
    calls = {name: (calls_per_frame(backend, fn, frames, 1), calls_per_frame(backend, fn, frames, BATCH))
             for name, fn in fns.items()}
    inner.close()
    return {"recall": recall, "ms": ms, "calls": calls, "frames": len(frames)}


def run(ctx: Context) -> None:
    res = measure(frames_per_scene=6 if ctx.quick else 30, rounds=ctx.rounds)
    recall: dict[str, dict[str, Recall]] = res["recall"]
    ms: dict[str, float] = res["ms"]
    calls: dict[str, tuple[float, float]] = res["calls"]
    params = {"frames": res["frames"], "size": "1280x720", "scenes": "approach, crowd (seed 0)", "ort_threads": 1}
    for name in recall:
        for scene, r in recall[name].items():
            base = recall[BASELINE][scene]
            for key in r.by_size:
                value, base_value = _recall_at(r, key), _recall_at(base, key)
                found, faces = r.by_size[key]
                ctx.emit(Result("detectors", f"recall_{name}_{scene}_{key}px", value, "recall", f"{BASELINE} recall",
                                base_value, params={**params, "found": found, "faces": faces},
                                note=f"faces {key} px wide, >= 90 % visible"))
            ctx.emit(Result("detectors", f"false_detections_{name}_{scene}", float(r.false_detections), "boxes",
                            f"{BASELINE} false detections", float(base.false_detections), params=params,
                            note="detections overlapping no truth face (IoU < 0.4; includes faces < 40 px hidden)"))
        ctx.emit(Result("detectors", f"cpu_ms_per_frame_{name}", ms[name], "ms", f"{BASELINE} ms",
                        ms[BASELINE], params=params, note="CPU time per 720p frame incl. pre/post, 1 ORT thread"))
        ctx.emit(Result("detectors", f"calls_per_frame_{name}", calls[name][0], "calls", f"{BASELINE} calls",
                        calls[BASELINE][0], params=params, note="backend calls, one frame per detect call"))
        ctx.emit(Result("detectors", f"calls_per_frame_batch{BATCH}_{name}", calls[name][1], "calls",
                        f"{BASELINE} calls", calls[BASELINE][1], params=params,
                        note=f"backend calls per frame, {BATCH} frames (cameras) per detect call"))


def main() -> None:
    """``python -m bench.detectors [--quick] [--frames N]``: the numbers as a table on stdout (no RESULTS.md)."""
    import sys

    quick = "--quick" in sys.argv
    n = int(sys.argv[sys.argv.index("--frames") + 1]) if "--frames" in sys.argv else (6 if quick else 30)
    res = measure(frames_per_scene=n, rounds=3 if quick else 5)
    out = sys.stdout
    out.write(f"frames: {res['frames']}\n")
    for name, per_scene in res["recall"].items():
        for scene, r in per_scene.items():
            by = " ".join(f"{k}:{f}/{n}" for k, (f, n) in r.by_size.items())
            out.write(f"{name:12s} {scene:9s} recall>=40 {r.found}/{r.faces}  {by}  false {r.false_detections}\n")
    for name in res["ms"]:
        c1, cb = res["calls"][name]
        out.write(f"{name:12s} {res['ms'][name]:7.1f} ms/frame  calls/frame {c1:.2f}  (batch {BATCH}: {cb:.3f})\n")


if __name__ == "__main__":
    main()
