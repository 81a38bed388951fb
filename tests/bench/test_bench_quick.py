"""Smoke test for ``argus bench --quick``: every area runs on tiny sizes and emits well-formed result lines.

The benchmarks themselves are never part of pass/fail (their numbers depend on the machine); this only keeps them
from rotting. The quick run starts its own Kafka and Triton on free ports (and stops them), so it is marked
integration like the other real-server tests.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = {"bench", "name", "value", "unit", "baseline", "baseline_value", "ratio", "target", "meets_target",
            "params", "machine"}
#: The areas a plain quick run covers: bench/run.py's list (named once there), without the opt-in GPU paths.
AREAS = set(subprocess.run([sys.executable, "-c", "from bench.run import AREAS; print(' '.join(AREAS))"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()) - {"gpu"}


def _run(tmp_path: Path, *args: str, timeout: float) -> tuple[int, list[dict], str]:
    proc = subprocess.run([sys.executable, "-m", "bench", *args, "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, check=False)
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return proc.returncode, lines, proc.stderr


@pytest.mark.integration
def test_quick_run_emits_well_formed_results_for_every_area(tmp_path: Path) -> None:
    rc, lines, err = _run(tmp_path, "--quick", timeout=900)
    assert rc == 0, f"argus bench --quick failed:\n{err[-3000:]}"
    assert len(AREAS) >= 10 and {"motion", "gallery_sync", "capacity", "detectors"} <= AREAS
    assert {r["bench"] for r in lines} == AREAS
    for r in lines:
        assert r.keys() >= REQUIRED, f"{r.get('name')}: missing {REQUIRED - r.keys()}"
        assert r["machine"]["cores"] >= 1 and r["machine"]["cpu"]
        assert isinstance(r["params"], dict)
        assert r["meets_target"] in (True, False, None)
        assert (r["target"] is None) == (r["meets_target"] is None) or r.get("skipped"), r
        if r.get("skipped"):
            assert not r["skipped"].startswith("error"), f"{r['bench']}: {r['skipped']}"
            continue
        for key in ("value", "baseline_value", "ratio"):
            v = r[key]
            # a measured 0 is a result (BlazeFace's recall of 27-px faces); a baseline of 0 would leave no ratio
            assert isinstance(v, (int, float)) and math.isfinite(v) and v >= 0, f"{r['bench']}/{r['name']}: {key}={v}"
        assert r["baseline_value"] > 0, f"{r['bench']}/{r['name']}: baseline 0 but not skipped"
        assert r["ratio"] == pytest.approx(r["value"] / r["baseline_value"], rel=1e-3)
    for area in AREAS:
        assert sum(1 for r in lines if r["bench"] == area and not r.get("skipped")) >= 1, f"{area}: no result"
    table = (tmp_path / "RESULTS.md").read_text()
    assert "argus bench --quick" in table and "| result | value |" in table
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == len(lines)


def test_gpu_paths_report_skipped_without_a_gpu(tmp_path: Path) -> None:
    import faiss

    if faiss.get_num_gpus() > 0:
        pytest.skip("a GPU is visible: the GPU paths measure instead of skipping")
    rc, lines, err = _run(tmp_path, "--quick", "--gpu", "--only", "gpu", timeout=120)
    assert rc == 0, err[-3000:]
    assert lines and all(r["bench"] == "gpu" and r["skipped"] and r["value"] is None for r in lines)
    assert all("GPU" in r["skipped"] or "onnxruntime" in r["skipped"] for r in lines)
