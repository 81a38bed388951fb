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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

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


class ConversionError(RuntimeError):
    """The source package/model is not what this converter was written for, or the ONNX output disagrees."""


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
# TFLite flatbuffer -> ONNX


@dataclass
class _Tensor:
    name: str  # ONNX value name
    shape: list[int]  # TFLite (NHWC) shape
    const: np.ndarray | None  # constant value (weights, shapes), already dequantised to float32
    layout: str  # "nchw" for 4-D activations in the ONNX graph, "plain" otherwise


_TFL_DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 4: np.int64}


def _builtin_names() -> dict[int, str]:
    import tflite

    return {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)}


def _same_pads(size: int, k: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow SAME padding for one axis: the extra pixel goes after (bottom/right)."""
    k_eff = (k - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + k_eff - size, 0)
    return total // 2, total - total // 2


def tflite_to_onnx(data: bytes, *, graph_name: str) -> Any:
    """Translate the TFLite graph into an ONNX ModelProto with a dynamic batch dimension."""
    import onnx
    import tflite
    from onnx import TensorProto, helper, numpy_helper

    model = tflite.Model.GetRootAsModel(data, 0)
    if model.SubgraphsLength() != 1:
        raise ConversionError(f"expected 1 subgraph, got {model.SubgraphsLength()}")
    g = model.Subgraphs(0)
    opnames = _builtin_names()

    def clean(name: str) -> str:
        return name.replace(";", "_").replace(":", "_")

    tensors: list[_Tensor] = []
    for i in range(g.TensorsLength()):
        t = g.Tensors(i)
        shape = [int(s) for s in t.ShapeAsNumpy()] if t.ShapeLength() else []
        const = None
        buf = model.Buffers(t.Buffer())
        if buf is not None and buf.DataLength() > 0:
            dtype = _TFL_DTYPES.get(t.Type())
            if dtype is None:
                raise ConversionError(f"tensor {t.Name().decode()}: unsupported TFLite type {t.Type()}")
            const = np.frombuffer(buf.DataAsNumpy().tobytes(), dtype=dtype).reshape(shape)
        tensors.append(_Tensor(clean(t.Name().decode()), shape, const, "plain"))

    nodes: list[Any] = []
    inits: list[Any] = []

    def add_init(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(value, name))
        return name

    in_idx = g.Inputs(0)
    tin = tensors[in_idx]
    if tin.shape != [1, 192, 192, 3]:
        raise ConversionError(f"input: expected shape [1, 192, 192, 3], got {tin.shape}")
    tin.name = "input__nchw"  # the TFLite tensor is also called "input"; keep the public name for the NHWC feed
    graph_inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 192, 192, 3])]
    nodes.append(helper.make_node("Transpose", ["input"], [tin.name], perm=[0, 3, 1, 2], name="input_to_nchw"))
    tin.layout = "nchw"

    def act(out_name: str, fused: int, node_name: str) -> str:
        """Apply a fused activation (0 none, 1 relu, 3 relu6) and return the final value name."""
        if fused == 0:
            return out_name
        pre = out_name + "__preact"
        nodes[-1].output[0] = pre
        if fused == 1:
            nodes.append(helper.make_node("Relu", [pre], [out_name], name=node_name + "_relu"))
        elif fused == 3:
            lo = add_init(node_name + "_lo", np.array(0.0, np.float32))
            hi = add_init(node_name + "_hi", np.array(6.0, np.float32))
            nodes.append(helper.make_node("Clip", [pre, lo, hi], [out_name], name=node_name + "_relu6"))
        else:
            raise ConversionError(f"{node_name}: unsupported fused activation {fused}")
        return out_name

    for k in range(g.OperatorsLength()):
        op = g.Operators(k)
        oc = model.OperatorCodes(op.OpcodeIndex())
        kind = opnames.get(max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode()), "?")
        ins = [tensors[op.Inputs(j)] if op.Inputs(j) >= 0 else None for j in range(op.InputsLength())]
        out = tensors[op.Outputs(0)]
        opts = op.BuiltinOptions()
        nname = f"{kind.lower()}_{k}"

        if kind == "DEQUANTIZE":
            src = ins[0]
            if src is None or src.const is None:
                raise ConversionError(f"{nname}: expected a constant float16 input")
            out.const = src.const.astype(np.float32)
            continue

        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            x, w, b = ins[0], ins[1], ins[2] if len(ins) > 2 else None
            if x is None or w is None or w.const is None or x.layout != "nchw":
                raise ConversionError(f"{nname}: expected NCHW activation and constant weights")
            if kind == "CONV_2D":
                o = tflite.Conv2DOptions()
                o.Init(opts.Bytes, opts.Pos)
                weight = np.ascontiguousarray(w.const.transpose(0, 3, 1, 2))  # OHWI -> OIHW
                group = 1
            else:
                o = tflite.DepthwiseConv2DOptions()
                o.Init(opts.Bytes, opts.Pos)
                cin = x.shape[3]
                cout = w.const.shape[3]
                if o.DepthMultiplier() not in (0, cout // cin) or cout % cin:
                    raise ConversionError(f"{nname}: depth multiplier {o.DepthMultiplier()} for {cin}->{cout}")
                weight = np.ascontiguousarray(w.const[0].transpose(2, 0, 1)[:, None])  # 1HWC -> C1HW
                group = cin
            kh, kw = weight.shape[2], weight.shape[3]
            sh, sw = o.StrideH(), o.StrideW()
            dh, dw = o.DilationHFactor() or 1, o.DilationWFactor() or 1
            if o.Padding() == tflite.Padding.SAME:
                pt, pb = _same_pads(x.shape[1], kh, sh, dh)
                pl, pr = _same_pads(x.shape[2], kw, sw, dw)
            else:
                pt = pb = pl = pr = 0
            inputs = [x.name, add_init(w.name + "__oihw", weight)]
            if b is not None and b.const is not None:
                inputs.append(add_init(b.name + "__f32", b.const.astype(np.float32)))
            nodes.append(
                helper.make_node(
                    "Conv",
                    inputs,
                    [out.name],
                    name=nname,
                    kernel_shape=[kh, kw],
                    strides=[sh, sw],
                    dilations=[dh, dw],
                    pads=[pt, pl, pb, pr],
                    group=group,
                )
            )
            act(out.name, o.FusedActivationFunction(), nname)
            out.layout = "nchw"
            continue

        if kind == "RELU":
            x = ins[0]
            assert x is not None
            nodes.append(helper.make_node("Relu", [x.name], [out.name], name=nname))
            out.layout = x.layout
            continue

        if kind == "ADD":
            a, b2 = ins[0], ins[1]
            assert a is not None and b2 is not None
            if a.const is not None or b2.const is not None or a.shape != b2.shape:
                raise ConversionError(f"{nname}: expected two activations of one shape, got {a.shape} {b2.shape}")
            o = tflite.AddOptions()
            o.Init(opts.Bytes, opts.Pos)
            nodes.append(helper.make_node("Add", [a.name, b2.name], [out.name], name=nname))
            act(out.name, o.FusedActivationFunction(), nname)
            out.layout = a.layout
            continue

        if kind == "PAD":
            x, p = ins[0], ins[1]
            assert x is not None and p is not None and p.const is not None
            if x.layout != "nchw" or p.const.shape != (4, 2):
                raise ConversionError(f"{nname}: expected NHWC paddings (4, 2), got {p.const.shape}")
            pn = p.const.astype(np.int64)[[0, 3, 1, 2]]  # NHWC -> NCHW order
            pads = np.concatenate([pn[:, 0], pn[:, 1]])
            if pads[0] or pads[4]:
                raise ConversionError(f"{nname}: padding the batch dimension is not supported")
            nodes.append(helper.make_node("Pad", [x.name, add_init(nname + "_pads", pads)], [out.name], name=nname))
            out.layout = "nchw"
            continue

        if kind == "MAX_POOL_2D":
            x = ins[0]
            assert x is not None and x.layout == "nchw"
            o = tflite.Pool2DOptions()
            o.Init(opts.Bytes, opts.Pos)
            kh, kw, sh, sw = o.FilterHeight(), o.FilterWidth(), o.StrideH(), o.StrideW()
            if o.Padding() == tflite.Padding.SAME:
                # TF SAME max-pool ignores padded cells; ONNX MaxPool pads with -inf, which is equivalent
                pt, pb = _same_pads(x.shape[1], kh, sh)
                pl, pr = _same_pads(x.shape[2], kw, sw)
            else:
                pt = pb = pl = pr = 0
            nodes.append(
                helper.make_node(
                    "MaxPool",
                    [x.name],
                    [out.name],
                    name=nname,
                    kernel_shape=[kh, kw],
                    strides=[sh, sw],
                    pads=[pt, pl, pb, pr],
                )
            )
            act(out.name, o.FusedActivationFunction(), nname)
            out.layout = "nchw"
            continue

        if kind == "RESIZE_BILINEAR":
            x = ins[0]
            assert x is not None and x.layout == "nchw"
            o = tflite.ResizeBilinearOptions()
            o.Init(opts.Bytes, opts.Pos)
            if o.AlignCorners():
                mode = "align_corners"
            elif o.HalfPixelCenters():
                mode = "half_pixel"  # TF clamps source coordinates to the edge, as ONNX Runtime does
            else:
                mode = "asymmetric"
            scales = np.array([1.0, 1.0, out.shape[1] / x.shape[1], out.shape[2] / x.shape[2]], dtype=np.float32)
            nodes.append(
                helper.make_node(
                    "Resize",
                    [x.name, "", add_init(nname + "_scales", scales)],
                    [out.name],
                    name=nname,
                    mode="linear",
                    coordinate_transformation_mode=mode,
                )
            )
            out.layout = "nchw"
            continue

        if kind == "RESHAPE":
            x = ins[0]
            assert x is not None
            src = x.name
            if x.layout == "nchw":
                src = x.name + "__nhwc"
                nodes.append(helper.make_node("Transpose", [x.name], [src], perm=[0, 2, 3, 1], name=nname + "_nhwc"))
            target = np.array(out.shape, dtype=np.int64)
            if target[0] != 1:
                raise ConversionError(f"{nname}: expected batch 1 in reshape target, got {out.shape}")
            target[0] = -1  # dynamic batch
            nodes.append(helper.make_node("Reshape", [src, add_init(nname + "_shape", target)], [out.name], name=nname))
            out.layout = "plain"
            continue

        if kind == "CONCATENATION":
            xs = [t for t in ins if t is not None]
            if any(t.layout != "plain" for t in xs):
                raise ConversionError(f"{nname}: concatenation of 4-D NCHW tensors is not supported")
            o = tflite.ConcatenationOptions()
            o.Init(opts.Bytes, opts.Pos)
            nodes.append(helper.make_node("Concat", [t.name for t in xs], [out.name], name=nname, axis=o.Axis()))
            act(out.name, o.FusedActivationFunction(), nname)
            out.layout = "plain"
            continue

        raise ConversionError(f"op {k}: unsupported TFLite op {kind}")

    graph_outputs = []
    for j in range(g.OutputsLength()):
        t = tensors[g.Outputs(j)]
        public = OUTPUT_NAMES.get(t.name)
        if public is None:
            raise ConversionError(f"output {t.name}: expected one of {sorted(OUTPUT_NAMES)}")
        nodes.append(helper.make_node("Identity", [t.name], [public], name=f"output_{public}"))
        graph_outputs.append(helper.make_tensor_value_info(public, TensorProto.FLOAT, ["N", *t.shape[1:]]))
    graph_outputs.sort(key=lambda v: v.name, reverse=True)  # regressors, classificators (stable, documented)

    graph = helper.make_graph(nodes, graph_name, graph_inputs, graph_outputs, initializer=inits)
    onnx_model = helper.make_model(
        graph, producer_name="argus tools/convert_models/blazeface.py", opset_imports=[helper.make_opsetid("", OPSET)]
    )
    onnx_model.ir_version = 8  # readable by the ONNX Runtime builds in older Triton images too
    onnx_model.doc_string = f"{PACKAGE}@{VERSION} {graph_name} (Apache-2.0), converted without TensorFlow"
    onnx.checker.check_model(onnx_model)
    return onnx_model


# ----------------------------------------------------------------------------------------------------------------
# verification


def reference_outputs(tflite_bytes: bytes, x: np.ndarray) -> dict[str, np.ndarray]:
    """Run Google's TFLite interpreter (batch 1, one image at a time) as the reference."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as e:
        raise ConversionError("ai-edge-litert is needed as the reference (see requirements-blazeface.txt)") from e
    interp = Interpreter(model_content=tflite_bytes)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]["index"]
    outs = {OUTPUT_NAMES.get(d["name"], d["name"]): d["index"] for d in interp.get_output_details()}
    res: dict[str, list[np.ndarray]] = {k: [] for k in outs}
    for i in range(x.shape[0]):
        interp.set_tensor(inp, x[i : i + 1])
        interp.invoke()
        for k, idx in outs.items():
            res[k].append(interp.get_tensor(idx).copy())
    return {k: np.concatenate(v) for k, v in res.items()}


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
