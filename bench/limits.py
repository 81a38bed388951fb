"""Physical limits of one core: JPEG decode/encode of real 720p/1080p frames, and memory bandwidth.

JPEG decode is the floor of the inference stage (every frame arrives as JPEG), encode the floor of ingest. Frames
are real clip frames (assets/pyfeat) upscaled to 720p/1080p and encoded at the ingest default quality 85 with the
project's own ``argus.imaging`` functions; OpenCV runs one thread, so the figures are per core.

Baselines: a JPEG figure is compared with copying the same raw frame in memory (numpy, one core), so the ratio says
how many raw-frame copies one decode costs and stays meaningful when the machine is busy. Memory bandwidth (the
matcher's bound) is a streaming copy of an array far larger than the L3 cache, counted STREAM-style as bytes read
plus bytes written per second, against the same copy of a cache-resident array.
"""

from __future__ import annotations

import time

import numpy as np

from argus.imaging import decode_jpeg, encode_jpeg
from bench.common import Context, Cycle, Result, clip_frames, encode_all, paired_rates, single_thread_cv2, upscale

AREA = "limits"
JPEG_QUALITY = 85


def copy_bandwidth(ctx: Context, *, nbytes: int, versus: int | None = None) -> tuple[float, float]:
    """Bytes moved (read + written) per second by a single-threaded numpy copy of ``nbytes`` (and of ``versus``
    bytes, in alternating rounds, so a burst of load from a neighbour hits both; 0.0 when not asked).

    The best of several time-boxed rounds: a limit is what the hardware can do, and on a shared machine a round
    that lost the core to a neighbour says nothing about that.
    """
    arrays = []
    for size in (nbytes, versus):
        if size:
            src = np.ones(size // 4, dtype=np.float32)
            dst = np.empty_like(src)
            np.copyto(dst, src)
            arrays.append((src, dst))
    per_round = max(0.05, ctx.min_time_s / ctx.rounds / len(arrays))
    best = [0.0] * len(arrays)
    for _ in range(ctx.rounds):
        for k, (src, dst) in enumerate(arrays):
            reps = 0
            t0 = time.perf_counter()
            while (dt := time.perf_counter() - t0) < per_round:
                np.copyto(dst, src)
                reps += 1
            best[k] = max(best[k], 2 * src.nbytes * reps / dt)
    return best[0], (best[1] if len(best) > 1 else 0.0)


def dram_copy_bytes(ctx: Context) -> int:
    return (128 if ctx.quick else 512) * 1024 * 1024


def run(ctx: Context) -> None:
    single_thread_cv2()
    n = 6 if ctx.quick else 24
    base = clip_frames(n)
    for res in ("720p", "1080p"):
        frames = upscale(base, res)
        jpegs = encode_all(frames, JPEG_QUALITY)
        kb = float(np.mean([len(j) for j in jpegs]) / 1024)
        pairs = Cycle([(f, np.empty_like(f)) for f in frames])
        jpeg_cycle = Cycle(jpegs)

        def decode(c: Cycle[bytes] = jpeg_cycle) -> None:
            decode_jpeg(c.next())

        def encode(c: Cycle[tuple[np.ndarray, np.ndarray]] = pairs) -> None:
            encode_jpeg(c.next()[0], quality=JPEG_QUALITY)

        def copy(c: Cycle[tuple[np.ndarray, np.ndarray]] = pairs) -> None:
            src, dst = c.next()
            np.copyto(dst, src)

        params = {"frames": n, "source": "assets/pyfeat clips, upscaled (cubic)", "jpeg_quality": JPEG_QUALITY,
                  "mean_jpeg_kb": round(kb, 1), "threads": 1}
        for what, fn in (("decode", decode), ("encode", encode)):
            v, b = paired_rates(fn, copy, items_a=1, items_b=1, min_time_s=ctx.min_time_s, rounds=ctx.rounds)
            ctx.emit(Result(
                AREA, f"jpeg_{what}_{res}", v, "frames/s/core",
                f"numpy copy of the same raw {res} frame (frames/s/core)", b,
                params={**params, "ms_per_frame": round(1000 / v, 3)},
                note=f"the {'inference' if what == 'decode' else 'ingest'} stage's per-core floor "
                     f"({1000 / v:.2f} ms/frame)",
            ))
    dram = dram_copy_bytes(ctx)
    cache = 64 * 1024
    bw, bw_cache = copy_bandwidth(ctx, nbytes=dram, versus=cache)
    ctx.emit(Result(
        AREA, "memory_copy_bandwidth", bw / 1e9, "GB/s/core",
        "the same copy of a 64 KiB (cache-resident) array, alternating rounds (GB/s/core)", bw_cache / 1e9,
        params={"array_mib": dram // (1024 * 1024), "counting": "bytes read + bytes written", "threads": 1},
        note="the bound the matcher's flat scan is held against",
    ))
