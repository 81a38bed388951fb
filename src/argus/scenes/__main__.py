"""``python -m argus.scenes --scenario NAME --out DIR``: a clip, its truth and a contact sheet to look at.

Writes ``DIR/NAME.mp4``, ``DIR/NAME.truth.json`` and ``DIR/NAME.contact.png`` (frames with the truth boxes drawn:
green visible, yellow partly occluded, red occluded; sunglasses marked "sg"). ``--recall`` also runs the
project's detector on some frames and prints recall against the truth.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from argus.errors import ArgusError
from argus.scenes.bank import default_bank
from argus.scenes.presets import PRESETS, preset
from argus.scenes.scene import FrameTruth, Scene

RESOLUTIONS = {"720p": (1280, 720), "1080p": (1920, 1080)}


def annotate(img: np.ndarray, truth: FrameTruth) -> np.ndarray:
    out = img.copy()
    for f in truth.faces:
        x1, y1, x2, y2 = (round(v) for v in f.box)
        color = (0, 0, 255) if f.occluded else (0, 220, 255) if f.visible < 0.9 else (0, 220, 0)
        cv2.rectangle(out, (x1, y1), (x2, y2), color, 2)
        label = f"{f.visit_id} {f.size:.0f}px" + (" sg" if f.sunglasses else "") + \
            (f" {f.visible:.0%}" if f.visible < 0.999 else "")
        cv2.putText(out, label, (x1, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, color, 1, cv2.LINE_AA)
    cv2.putText(out, f"#{truth.index} t={truth.ts:.1f}", (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2,
                cv2.LINE_AA)
    return out


def contact_sheet(scene: Scene, *, tiles: int = 12, cols: int = 4, tile_width: int = 480) -> np.ndarray:
    """``tiles`` frames spread over the scene, busiest moments favoured, annotated with their truth."""
    truths = list(scene.truths())
    with_faces = [t.index for t in truths if t.faces]
    pool = with_faces if len(with_faces) >= tiles else list(range(scene.n_frames))
    pick = sorted({pool[round(k)] for k in np.linspace(0, len(pool) - 1, min(tiles, len(pool)))})
    th = round(tile_width * scene.height / scene.width)
    imgs = [cv2.resize(annotate(scene.render(i)[0], truths[i]), (tile_width, th), interpolation=cv2.INTER_AREA)
            for i in pick]
    while len(imgs) % cols:
        imgs.append(np.zeros_like(imgs[0]))
    rows = [np.hstack(imgs[r:r + cols]) for r in range(0, len(imgs), cols)]
    return np.vstack(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m argus.scenes", description=__doc__.splitlines()[0] if __doc__ else "")
    ap.add_argument("--scenario", required=True, choices=sorted(PRESETS))
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--resolution", choices=sorted(RESOLUTIONS), default="720p")
    ap.add_argument("--fps", type=float, default=5.0)
    ap.add_argument("--no-video", action="store_true", help="skip the mp4 (truth and contact sheet only)")
    ap.add_argument("--recall", type=int, default=0, metavar="N",
                    help="run the project's detector on N frames and print recall vs the truth (IoU >= 0.4)")
    args = ap.parse_args(argv)
    try:
        scene = preset(args.scenario, bank=default_bank(), seed=args.seed, size=RESOLUTIONS[args.resolution],
                       fps=args.fps)
        args.out.mkdir(parents=True, exist_ok=True)
        stem = args.out / args.scenario
        t = time.perf_counter()
        if not args.no_video:
            scene.write_mp4(stem.with_suffix(".mp4"))
        dt = time.perf_counter() - t
        stem.with_suffix(".truth.json").write_text(scene.truth_json(indent=1))
        cv2.imwrite(str(stem.with_suffix(".contact.png")), contact_sheet(scene))
        report: dict[str, object] = {"scenario": args.scenario, "frames": scene.n_frames,
                                     "visits": len(scene.visits), "identities": len(scene.identities),
                                     "out": str(args.out)}
        if not args.no_video:
            report["render_and_encode_fps"] = round(scene.n_frames / dt, 1)
        if args.recall:
            from argus.config import load_settings
            from argus.runtime.resources import Resources
            from argus.scenes.measure import detector_recall, frames_to_check

            detect = Resources(load_settings()).pipeline.detect
            report["recall"] = detector_recall(scene, detect,
                                               frames=frames_to_check(scene, args.recall)).as_dict()
        print(json.dumps(report))
    except ArgusError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
