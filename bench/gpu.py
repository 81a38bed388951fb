"""GPU paths (``--gpu``): faiss-gpu flat search, Triton's GPU config (onnxruntime backend), ONNX Runtime CUDA.

Each path checks what it needs first and reports ``skipped`` with the reason instead of failing, so the suite runs
unchanged on CPU-only machines. With a GPU and faiss-gpu, the faiss path measures flat search on the GPU against
the same search on one CPU core. The Triton GPU config needs a Triton build with the onnxruntime backend and CUDA
(the PyPI tritonserver used by ``argus_dev.devservers`` has only the python backend), so it is reported as skipped
even with a GPU until such a server is available; ONNX Runtime CUDA needs onnxruntime-gpu.
"""

from __future__ import annotations

import shutil
import time

import faiss

from bench.common import Context, Result
from bench.matcher import DIM, K, probes, unit_gallery

AREA = "gpu"


def gpu_count() -> int:
    n = int(faiss.get_num_gpus()) if hasattr(faiss, "get_num_gpus") else 0
    return n


def no_gpu_reason() -> str | None:
    if shutil.which("nvidia-smi") is None and gpu_count() == 0:
        return "no GPU (no nvidia-smi, faiss sees 0 GPUs); not measured in this round"
    return None


def run(ctx: Context) -> None:
    reason = no_gpu_reason()
    n = 100_000 if ctx.quick else 1_000_000
    label = f"{n // 1000}k" if n < 1_000_000 else "1M"
    if reason is None and gpu_count() == 0:
        reason = "GPU present but this faiss build has no GPU support (install faiss-gpu)"
    if reason is not None:
        ctx.emit(Result(AREA, f"faiss_gpu_flat_{label}_batched_64", None, "queries/s",
                        "the same search on one CPU core", None, skipped=reason))
    else:
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
        del g, cpu, gpu
    ctx.emit(Result(AREA, "triton_gpu_config_embedder_b8", None, "faces/s",
                    "Triton CPU config, batch 8", None,
                    skipped=reason or "needs a Triton build with the onnxruntime backend and CUDA (config.pbtxt); "
                                      "the devservers Triton has only the python backend"))
    try:
        import onnxruntime as ort

        cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    except ImportError:
        cuda = False
    ctx.emit(Result(AREA, "ort_cuda_embedder_b32", None, "faces/s", "ONNX Runtime CPU, batch 32", None,
                    skipped=reason or (None if cuda else "onnxruntime has no CUDAExecutionProvider "
                                                         "(install onnxruntime-gpu)")
                    or "CUDA path not implemented in OnnxRuntimeBackend (CPU provider only)"))
