"""Convert MediaPipe's BlazeFace full-range face detector (.tflite) to a batchable ONNX file without TensorFlow.

Why this shape: tf2onnx drags in TensorFlow (GBs, slow to install on 2 cores), while the detector is a plain
feed-forward graph of nine TFLite op kinds (DEQUANTIZE of float16 weights, CONV_2D, DEPTHWISE_CONV_2D, RELU, ADD,
PAD, MAX_POOL_2D, RESIZE_BILINEAR, RESHAPE; the short-range model adds CONCATENATION). So the flatbuffer is read
with the small ``tflite`` parser package, each op is translated node by node with ``onnx.helper``, and the result is
checked against Google's own TFLite interpreter (``ai-edge-litert``) on synthetic and real face inputs. A mismatch
fails the conversion and nothing is written.

Translation rules:
- the ONNX input keeps the TFLite layout, ``input`` N x 192 x 192 x 3 float32 RGB in [-1, 1], and is transposed
  once to NCHW inside the graph; all 4-D tensors are NCHW from then on;
- TFLite ``SAME`` padding is made explicit (TF puts the odd pixel at the bottom/right, ONNX ``SAME_UPPER`` would
  too, but explicit pads are unambiguous for every runtime);
- float16 weights are dequantised to float32 once, at conversion time (the model computes in float32 anyway);
- RESHAPE shape constants have their batch entry replaced by -1, which (with the fixed 192 x 192 spatial size)
  is what makes the batch dimension dynamic; before the reshape the NCHW tensor is transposed back to NHWC so the
  anchor order (row-major over the 48 x 48 grid) is exactly MediaPipe's.

Outputs: ``regressors`` N x 2304 x 16 (box centre offset, size and 6 keypoints, in 192-px input pixels relative to
the anchor) and ``classificators`` N x 2304 x 1 (face logit). Decoding lives in ``argus.faces.blazeface``.

Usage::

    python tools/convert_models/blazeface.py           # convert into triton_models/blazeface/1/model.onnx
    python tools/convert_models/blazeface.py --check   # rebuild into a temp dir, compare with the committed file
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from common import ConversionError

LOG = logging.getLogger("convert.blazeface")

REPO = Path(__file__).resolve().parents[2]
PACKAGE = "@mediapipe/face_detection"
VERSION = "0.4.1657300184"
TGZ_NAME = f"mediapipe-face_detection-{VERSION}.tgz"
TGZ_SHA256 = "a118cde74923dc4435257fbfbb613464a0f58d115dff6314d4ff96c8aebf6419"  # as written by `npm pack`
SOURCE_SHA256 = {
    "face_detection_full_range.tflite": "99bf9494d84f50acc6617d89873f71bf6635a841ea699c17cb3377f9507cfec3",
    "face_detection_short_range.tflite": "3bc182eb9f33925d9e58b5c8d59308a760f4adea8f282370e428c51212c26633",
}
NPM_CACHE = REPO / ".cache" / "npm"
TGZ_SEARCH = (NPM_CACHE / TGZ_NAME, Path("/work/cache/pkgs") / TGZ_NAME)
CHECKSUMS = Path(__file__).resolve().parent / "checksums_blazeface.json"
# model name in triton_models -> source file inside the npm package
MODELS = {"blazeface": "face_detection_full_range.tflite"}
OPSET = 17
# ONNX Runtime vs TFLite (XNNPACK), both float32: summation order differs, so the error scales with the magnitude.
# Observed: regressors (192-px units, |v| up to ~100) <= 1.7e-4, logits (|v| up to ~12) <= 1.5e-5.
ATOL = {"regressors": 1e-3, "classificators": 1e-4}
OUTPUT_NAMES = {"reshaped_regressor_face_4": "regressors", "reshaped_classifier_face_4": "classificators"}


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def find_or_fetch_tgz() -> Path:
    """The npm tarball, fetched with ``npm pack`` (the ordinary registry client) when it is not cached yet."""
    for p in TGZ_SEARCH:
        if p.is_file():
            return p
    NPM_CACHE.mkdir(parents=True, exist_ok=True)
    LOG.info("fetching %s@%s with npm pack into %s", PACKAGE, VERSION, NPM_CACHE)
    try:
        subprocess.run(["npm", "pack", f"{PACKAGE}@{VERSION}"], cwd=NPM_CACHE, check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as e:
        raise ConversionError(f"could not fetch {PACKAGE}@{VERSION} with npm pack: {e}") from e
    path = NPM_CACHE / TGZ_NAME
    if not path.is_file():
        raise ConversionError(f"npm pack did not produce {path}")
    return path


def read_source(tgz: Path, member: str) -> bytes:
    """Read one model file from the tarball and check its sha256 (the tarball's own hash is checked by the caller)."""
    with tarfile.open(tgz, "r:gz") as tf:
        try:
            f = tf.extractfile(f"package/{member}")
        except KeyError as e:
            raise ConversionError(f"{tgz.name}: expected package/{member}, not found") from e
        if f is None:
            raise ConversionError(f"{tgz.name}: package/{member} is not a regular file")
        data = f.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SOURCE_SHA256[member]:
        raise ConversionError(f"{member}: expected sha256 {SOURCE_SHA256[member]}, got {digest}")
    return data


# ----------------------------------------------------------------------------------------------------------------
# TFLite flatbuffer -> ONNX (the translation itself is shared with facemesh.py, see common.py)


def tflite_to_onnx(data: bytes, *, graph_name: str) -> Any:
    """Translate the TFLite graph into an ONNX ModelProto with a dynamic batch dimension."""
    return common.tflite_to_onnx(
        data,
        graph_name=graph_name,
        input_shape=[1, 192, 192, 3],
        output_names=OUTPUT_NAMES,
        output_order=["regressors", "classificators"],  # stable, documented
        producer="argus tools/convert_models/blazeface.py",
        doc=f"{PACKAGE}@{VERSION} {graph_name} (Apache-2.0), converted without TensorFlow",
    )

# ----------------------------------------------------------------------------------------------------------------
# verification


def reference_outputs(tflite_bytes: bytes, x: np.ndarray) -> dict[str, np.ndarray]:
    """Run Google's TFLite interpreter (batch 1, one image at a time) as the reference."""
    return common.tflite_reference(tflite_bytes, x, OUTPUT_NAMES)


def verification_inputs() -> np.ndarray:
    """Synthetic noise, a flat image and three real face photos (squashed to 192 x 192), in [-1, 1]."""
    import cv2

    rng = np.random.default_rng(0)
    xs = [rng.uniform(-1, 1, (192, 192, 3)).astype(np.float32), np.zeros((192, 192, 3), np.float32)]
    for rel in ("assets/faces/astronaut.png", "assets/pyfeat/multi_face.jpg", "assets/faces/obama.jpg"):
        img = cv2.imread(str(REPO / rel), cv2.IMREAD_COLOR)
        if img is None:
            raise ConversionError(f"cannot read {REPO / rel}: expected a real face photo for verification")
        rgb = cv2.cvtColor(cv2.resize(img, (192, 192), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
        xs.append((rgb.astype(np.float32) / 127.5 - 1.0).astype(np.float32))
    return np.stack(xs)


def golden(tflite_bytes: bytes) -> dict[str, Any]:
    """TFLite's outputs at the 5 best anchors of the astronaut tile, kept in the checksum record so that the unit
    tests can compare ONNX Runtime with the reference without installing the TFLite interpreter."""
    x = verification_inputs()[2:3]
    ref = reference_outputs(tflite_bytes, x)
    top = np.argsort(-ref["classificators"][0, :, 0], kind="stable")[:5]
    return {
        "input": "assets/faces/astronaut.png, cv2.resize to 192x192 INTER_AREA, BGR->RGB, x / 127.5 - 1",
        "anchors": [int(a) for a in top],
        "classificators": [float(v) for v in ref["classificators"][0, top, 0]],
        "regressors": [[float(v) for v in ref["regressors"][0, a]] for a in top],
    }


def verify(onnx_path: Path, tflite_bytes: bytes) -> dict[str, float]:
    """Max abs difference of every output between ONNX Runtime (whole batch at once) and TFLite; raises on mismatch."""
    import onnxruntime as ort

    x = verification_inputs()
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"input": x}), strict=True))
    ref = reference_outputs(tflite_bytes, x)
    worst: dict[str, float] = {}
    for k, r in ref.items():
        if k not in got or got[k].shape != r.shape:
            raise ConversionError(f"output {k}: expected shape {r.shape}, got {got.get(k, np.zeros(0)).shape}")
        err = float(np.max(np.abs(got[k] - r)))
        LOG.info("output %s: max abs error %.3g over %d inputs", k, err, x.shape[0])
        if not err <= ATOL[k]:
            raise ConversionError(
                f"output {k}: ONNX disagrees with TFLite, max abs error {err:.3g}, expected <= {ATOL[k]}"
            )
        worst[k] = float(f"{err:.3g}")
    # the faces must actually be found (guards against a reference that is wrong in the same way)
    if float(ref["classificators"][2].max()) < 0.0:
        raise ConversionError("reference finds no face on astronaut.png: expected a positive logit")
    return worst


# ----------------------------------------------------------------------------------------------------------------
# files


NOTICE_TEMPLATE = """BlazeFace full-range face detector (MediaPipe),
converted to ONNX by tools/convert_models/blazeface.py.

Source: npm package {package}@{version} ({tgz}, sha256 {tgz_sha}),
        file package/{member} (sha256 {src_sha}).
Licence: Apache-2.0 (package.json "license"; MediaPipe, Copyright The MediaPipe Authors / Google LLC).
         Weights unchanged apart from float16 -> float32 and the TFLite -> ONNX op translation.
ONNX file sha256: {onnx_sha}
Input "input": float32 N x 192 x 192 x 3 (NHWC) RGB, pixel / 127.5 - 1 (range [-1, 1]).
Outputs: "regressors" N x 2304 x 16 (dx, dy, w, h, then 6 keypoints x, y; 192-px units relative to the anchor
         centre), "classificators" N x 2304 x 1 (face logit). Anchors: one per cell of a 48 x 48 grid
         (stride 4), row-major. Keypoints: subject's right eye, left eye, nose tip, mouth centre, right ear
         tragion, left ear tragion.
"""


def convert(out_root: Path, tgz: Path) -> dict[str, Any]:
    """Convert every model in MODELS under ``out_root`` (a triton_models-like dir); return the checksum record."""
    import onnx

    record: dict[str, Any] = {
        "source": {
            "package": PACKAGE,
            "version": VERSION,
            "tarball": TGZ_NAME,
            "tarball_sha256": TGZ_SHA256,
            "files": {m: SOURCE_SHA256[m] for m in MODELS.values()},
        },
        "reference": "TFLite interpreter from ai-edge-litert (XNNPACK, float32), batch of 1 per image",
        "tolerance_abs": ATOL,
        "outputs": {},
    }
    for name, member in MODELS.items():
        data = read_source(tgz, member)
        model = tflite_to_onnx(data, graph_name=name)
        path = out_root / name / "1" / "model.onnx"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".onnx.tmp")
        onnx.save(model, str(tmp))
        try:
            err = verify(tmp, data)
        except Exception:
            tmp.unlink(missing_ok=True)
            raise
        tmp.replace(path)
        digest = sha256_file(path)
        record["outputs"][f"triton_models/{name}/1/model.onnx"] = {
            "sha256": digest,
            "max_abs_error_vs_reference": err,
            "reference_golden": golden(data),
        }
        (out_root / name / "NOTICE").write_text(
            NOTICE_TEMPLATE.format(
                package=PACKAGE,
                version=VERSION,
                tgz=TGZ_NAME,
                tgz_sha=TGZ_SHA256,
                member=member,
                src_sha=SOURCE_SHA256[member],
                onnx_sha=digest,
            )
        )
        LOG.info("wrote %s (sha256 %s, max abs errors %s)", path, digest, err)
    return record


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=REPO / "triton_models", help="model repository root")
    ap.add_argument("--check", action="store_true", help="rebuild in a temp dir and compare with committed files")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        tgz = find_or_fetch_tgz()
        digest = sha256_file(tgz)
        if digest != TGZ_SHA256:
            raise ConversionError(f"{tgz}: expected sha256 {TGZ_SHA256}, got {digest}")
        if args.check:
            with tempfile.TemporaryDirectory() as d:
                record = convert(Path(d), tgz)
                bad = []
                for rel, info in record["outputs"].items():
                    committed = REPO / rel
                    have = sha256_file(committed) if committed.is_file() else "missing"
                    if have != info["sha256"]:
                        bad.append(f"{rel} (committed {have}, rebuilt {info['sha256']})")
                if bad:
                    LOG.error("out of date (rerun without --check): %s", ", ".join(bad))
                    return 1
            LOG.info("committed BlazeFace ONNX matches a fresh conversion")
            return 0
        record = convert(args.out, tgz)
        if args.out.resolve() == (REPO / "triton_models").resolve():
            CHECKSUMS.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    except ConversionError as e:
        LOG.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
