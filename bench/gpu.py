"""GPU paths (``--gpu``): faiss-gpu flat search, Triton's production configs, ONNX Runtime's CUDA provider.

Each path checks what it needs first and reports ``skipped`` with the reason instead of failing, so the suite runs
unchanged on CPU-only machines (``tests/bench/test_bench_quick.py`` checks that). With a GPU:

- **faiss-gpu**: flat inner-product search of a unit gallery on the GPU vs the same search on one CPU core
  (needs a faiss build with GPU support, e.g. ``faiss-gpu-cu12``).
- **Triton, production configs**: every model of ``triton_models/`` with its production ``config.pbtxt``
  (``platform: "onnxruntime_onnx"``, ``KIND_GPU``, dynamic batching) served by a ``tritonserver`` found on PATH
  whose backends directory holds the onnxruntime backend (the NGC container ``nvcr.io/nvidia/tritonserver:*-py3``;
  the PyPI ``tritonserver`` the dev harness uses has only the python backend, so it is skipped there with that
  reason); batch-8 requests over gRPC vs the same batch in-process on ONNX Runtime's CPU provider, one thread.
- **ONNX Runtime CUDA**: every model of ``triton_models/`` on ``CUDAExecutionProvider`` (onnxruntime-gpu) vs the
  CPU provider on one thread, batch 8 (batch ``max_batch_size`` when smaller), the same random input.

Inputs are random tensors of the production input shape (``dims`` of config.pbtxt; MTCNN's P-Net, whose height and
width are free, at 360 x 640, the first pyramid level of a 720p frame): the figures are model throughput, not
accuracy. Every figure is items per second and its baseline is the CPU path measured in the same run.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from bench.common import REPO_ROOT, Context, Result
from bench.matcher import DIM, K, probes, unit_gallery

AREA = "gpu"
MODELS = REPO_ROOT / "triton_models"
BATCH = 8
#: Free spatial dims (-1 in config.pbtxt) get these: MTCNN P-Net's first pyramid level of a 720p frame.
FREE_DIMS = (360, 640)
TRITON_BACKENDS = ("/opt/tritonserver/backends",)


def gpu_count() -> int:
    n = int(faiss.get_num_gpus()) if hasattr(faiss, "get_num_gpus") else 0
    return n


def no_gpu_reason() -> str | None:
    if shutil.which("nvidia-smi") is None and gpu_count() == 0:
        return "no GPU (no nvidia-smi, faiss sees 0 GPUs); not measured in this round"
    return None


# ------------------------------------------------------------------------------------------------ models

@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """One model of the repository as its production config declares it."""

    name: str
    onnx: Path
    input_name: str
    dims: tuple[int, ...]  # without the batch dimension, free dims filled in
    max_batch: int

    @property
    def batch(self) -> int:
        return min(BATCH, self.max_batch) if self.max_batch > 0 else 1


def latest_version(model_dir: Path) -> Path | None:
    versions = sorted((int(p.name), p) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()
                      and (p / "model.onnx").is_file())
    return versions[-1][1] / "model.onnx" if versions else None


def parse_config(text: str) -> tuple[str, tuple[int, ...], int]:
    """(first input's name, its dims, max_batch_size) from a config.pbtxt; free dims (-1) filled from FREE_DIMS."""
    mb = re.search(r"max_batch_size:\s*(\d+)", text)
    inp = re.search(r"input\s*\[\s*\{(.*?)\}", text, re.S)
    if inp is None:
        raise ValueError("expected an input [ { ... } ] block in config.pbtxt, got none")
    name = re.search(r'name:\s*"([^"]+)"', inp.group(1))
    dims = re.search(r"dims:\s*\[([^\]]*)\]", inp.group(1))
    if name is None or dims is None:
        raise ValueError("expected name and dims in the first input of config.pbtxt")
    raw = [int(x) for x in dims.group(1).replace(",", " ").split()]
    free = iter(FREE_DIMS)
    filled = tuple(next(free, 64) if d < 0 else d for d in raw)
    return name.group(1), filled, int(mb.group(1)) if mb else 0


def model_specs(root: Path = MODELS) -> list[ModelSpec]:
    """Every model with a production config.pbtxt and an ONNX file, sorted by name."""
    out = []
    for cfg in sorted(root.glob("*/config.pbtxt")):
        text = cfg.read_text()
        if "onnxruntime_onnx" not in text:
            continue
        onnx = latest_version(cfg.parent)
        if onnx is None:
            continue
        name, dims, mb = parse_config(text)
        out.append(ModelSpec(name=cfg.parent.name, onnx=onnx, input_name=name, dims=dims, max_batch=mb))
    return out


def _batch_input(spec: ModelSpec) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.random((spec.batch, *spec.dims), dtype=np.float32)


def _rate(fn: Callable[[], object], items: int, *, min_s: float) -> float:
    fn()
    fn()
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        dt = time.perf_counter() - t0
        if dt >= min_s and n >= 3:
            return n * items / dt


def ort_cpu_rate(spec: ModelSpec, x: np.ndarray, *, min_s: float) -> float:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    s = ort.InferenceSession(str(spec.onnx), so, providers=["CPUExecutionProvider"])
    return _rate(lambda: s.run(None, {spec.input_name: x}), x.shape[0], min_s=min_s)


def ort_cuda_rate(spec: ModelSpec, x: np.ndarray, *, min_s: float) -> float:
    import onnxruntime as ort

    s = ort.InferenceSession(str(spec.onnx), providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    if s.get_providers()[0] != "CUDAExecutionProvider":
        raise RuntimeError(f"{spec.name}: expected the CUDA provider, got {s.get_providers()}")
    return _rate(lambda: s.run(None, {spec.input_name: x}), x.shape[0], min_s=min_s)


# ------------------------------------------------------------------------------------------------ Triton

def triton_onnx_reason() -> str | None:
    """Why Triton's production configs cannot run here, or None when a tritonserver with the onnxruntime
    backend is on PATH."""
    exe = shutil.which("tritonserver")
    if exe is None:
        return "no tritonserver with the onnxruntime backend on PATH (run inside the NGC Triton container)"
    dirs = [os.environ.get("TRITON_BACKENDS_DIR", ""), *TRITON_BACKENDS,
            str(Path(exe).resolve().parent.parent / "backends")]
    if not any(d and (Path(d) / "onnxruntime").is_dir() for d in dirs):
        return (f"tritonserver at {exe} has no onnxruntime backend (looked in {', '.join(d for d in dirs if d)}); "
                "the PyPI build has only the python backend")
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def production_repository(dest: Path, specs: list[ModelSpec]) -> Path:
    """A model repository of the production configs only (no CPU variants, no python backends)."""
    for spec in specs:
        m = dest / spec.name
        (m / "1").mkdir(parents=True)
        shutil.copy2(MODELS / spec.name / "config.pbtxt", m / "config.pbtxt")
        shutil.copy2(spec.onnx, m / "1" / "model.onnx")
    return dest


@contextlib.contextmanager
def triton_production(specs: list[ModelSpec], log: Callable[[str], None]) -> Iterator[str]:
    """A tritonserver on free ports serving ``specs`` with their production configs; yields host:grpc_port."""
    import tritonclient.grpc as grpcclient

    with tempfile.TemporaryDirectory(prefix="argus-triton-gpu-") as tmp:
        repo = production_repository(Path(tmp) / "models", specs)
        http, grpc, metrics = _free_port(), _free_port(), _free_port()
        logf = open(Path(tmp) / "triton.log", "w")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(["tritonserver", f"--model-repository={repo}", f"--http-port={http}",
                                 f"--grpc-port={grpc}", f"--metrics-port={metrics}", "--strict-readiness=true"],
                                stdout=logf, stderr=subprocess.STDOUT)
        url = f"127.0.0.1:{grpc}"
        try:
            client = grpcclient.InferenceServerClient(url=url)
            deadline = time.monotonic() + 180
            while True:
                with contextlib.suppress(Exception):
                    if client.is_server_ready():
                        break
                if proc.poll() is not None or time.monotonic() > deadline:
                    logf.flush()
                    raise RuntimeError(f"tritonserver did not become ready (status {proc.poll()}): "
                                       + (Path(tmp) / "triton.log").read_text()[-2000:])
                time.sleep(1.0)
            log(f"gpu: tritonserver ready at {url} with {len(specs)} production configs")
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            logf.close()


def triton_rate(url: str, spec: ModelSpec, x: np.ndarray, *, min_s: float) -> float:
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(url=url)
    inp = grpcclient.InferInput(spec.input_name, list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    return _rate(lambda: client.infer(spec.name, [inp]), x.shape[0], min_s=min_s)


# ------------------------------------------------------------------------------------------------ the area

def _faiss(ctx: Context, reason: str | None) -> None:
    n = 100_000 if ctx.quick else 1_000_000
    label = f"{n // 1000}k" if n < 1_000_000 else "1M"
    if reason is None and gpu_count() == 0:
        reason = "GPU present but this faiss build has no GPU support (install faiss-gpu-cu12)"
    if reason is not None:
        ctx.emit(Result(AREA, f"faiss_gpu_flat_{label}_batched_64", None, "queries/s",
                        "the same search on one CPU core", None, skipped=reason))
        return
    g = unit_gallery(n)
    q = probes(g, 64 * 16)
    cpu = faiss.IndexFlatIP(DIM)
    cpu.add(g)
    res = faiss.StandardGpuResources()
    gpu = faiss.index_cpu_to_gpu(res, 0, cpu)
    faiss.omp_set_num_threads(1)

    def qps(index: faiss.Index) -> float:
        index.search(q[:64], K)
        t0 = time.perf_counter()
        for b in range(16):
            index.search(q[b * 64 : (b + 1) * 64], K)
        return 16 * 64 / (time.perf_counter() - t0)

    ctx.emit(Result(AREA, f"faiss_gpu_flat_{label}_batched_64", qps(gpu), "queries/s",
                    "the same search on one CPU core (queries/s)", qps(cpu),
                    params={"identities": n, "gpus": gpu_count(), "batch": 64, "k": K}))


def _cuda_reason() -> str | None:
    try:
        import onnxruntime as ort
    except ImportError:
        return "onnxruntime is not installed"
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return "onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu)"
    return None


def run(ctx: Context) -> None:
    reason = no_gpu_reason()
    _faiss(ctx, reason)
    specs = model_specs()
    min_s = 0.5 if ctx.quick else 3.0
    inputs = {s.name: _batch_input(s) for s in specs} if reason is None else {}
    cpu_rates: dict[str, float] = {}

    def cpu_rate(spec: ModelSpec) -> float:
        if spec.name not in cpu_rates:
            cpu_rates[spec.name] = ort_cpu_rate(spec, inputs[spec.name], min_s=min_s)
        return cpu_rates[spec.name]

    cuda_reason = reason or _cuda_reason()
    for spec in specs:
        name = f"ort_cuda_{spec.name}_b{spec.batch}"
        base = "ONNX Runtime CPU provider, 1 thread, same batch (items/s)"
        params = {"batch": spec.batch, "input": [spec.batch, *spec.dims], "onnx": str(spec.onnx.relative_to(REPO_ROOT))}
        if cuda_reason is not None:
            ctx.emit(Result(AREA, name, None, "items/s", base, None, skipped=cuda_reason, params=params))
            continue
        try:
            ctx.emit(Result(AREA, name, ort_cuda_rate(spec, inputs[spec.name], min_s=min_s), "items/s", base,
                            cpu_rate(spec), params=params))
        except Exception as e:  # one model failing on CUDA must not hide the others
            ctx.emit(Result(AREA, name, None, "items/s", base, None, params=params,
                            skipped=f"error on the CUDA provider (GPU present): {type(e).__name__}: {e}"))
    triton_reason = reason or triton_onnx_reason()
    if triton_reason is not None:
        for spec in specs:
            ctx.emit(Result(AREA, f"triton_gpu_{spec.name}_b{spec.batch}", None, "items/s",
                            "ONNX Runtime CPU provider in-process, 1 thread, same batch", None,
                            skipped=triton_reason, params={"config": f"triton_models/{spec.name}/config.pbtxt"}))
        return
    with triton_production(specs, ctx.log) as url:
        for spec in specs:
            name = f"triton_gpu_{spec.name}_b{spec.batch}"
            base = "ONNX Runtime CPU provider in-process, 1 thread, same batch (items/s)"
            params = {"batch": spec.batch, "input": [spec.batch, *spec.dims], "protocol": "gRPC",
                      "config": f"triton_models/{spec.name}/config.pbtxt (onnxruntime_onnx, KIND_GPU)"}
            try:
                ctx.emit(Result(AREA, name, triton_rate(url, spec, inputs[spec.name], min_s=min_s), "items/s",
                                base, cpu_rate(spec), params=params))
            except Exception as e:
                ctx.emit(Result(AREA, name, None, "items/s", base, None, params=params,
                                skipped=f"error from Triton (GPU present): {type(e).__name__}: {e}"))
