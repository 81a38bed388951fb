"""``argus bench [--quick] [--only AREA ...] [--gpu] [--out DIR]``: run the benchmark areas, one JSON line per result.

``argus bench soak --minutes N --load X [--out DIR]`` is the soak (bench/soak.py): not an area, since it runs for
as long as it is asked to.

stdout carries only the JSON lines (one per result, as soon as it is measured); progress goes to stderr. At the
end ``DIR/RESULTS.md`` (a table per area, the machine, the date and the exact command) and ``DIR/results.jsonl``
are written. Exit status 0 when every area ran, 1 when one failed (its error is also a line, with ``skipped``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import shlex
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import REPO_ROOT, Context, Result, load_avg, machine_info

AREAS: tuple[str, ...] = ("limits", "models", "emotion", "matcher", "bus", "gallery_sync", "api", "e2e", "motion",
                          "capacity", "detectors", "gpu")
DEFAULT_OUT = REPO_ROOT / "bench" / "results"
TITLES = {
    "limits": "Limits: JPEG and memory, per core",
    "models": "Models: ONNX Runtime batching, Triton vs in-process, dynamic batching",
    "emotion": "Emotion: FaceMesh + ECRL rules and TTA per face vs plain mini-Xception; stage frames/s with each on",
    "matcher": "Matcher: FAISS flat vs IVF, against the memory-bandwidth bound",
    "bus": "Bus: real FrameV2 messages on Kafka vs the in-memory bus",
    "api": "Operator API: alert list over a large history, requests/s on one core, vs GET /healthz",
    "e2e": "End to end: the four stages vs the model-bound rate",
    "motion": "Motion gating: cameras per 2-core node, gated vs per-frame pipeline, on the generated scenes",
    "capacity": "Capacity: simulated cameras through the real pipeline, CPU per message per stage vs the formulas",
    "gpu": "GPU paths",
    "gallery_sync": "Gallery sync: enroll to every replica via the compacted topic; matching through a bulk enrolment",
}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="argus bench", description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="smoke mode: tiny sizes, every area, about a minute")
    ap.add_argument("--only", nargs="+", action="extend", choices=AREAS, metavar="AREA", default=None,
                    help=f"run only these areas (some of {', '.join(AREAS)})")
    ap.add_argument("--gpu", action="store_true",
                    help="also run the GPU paths (Triton GPU config, faiss-gpu); reported as skipped without a GPU")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where RESULTS.md and results.jsonl go")
    return ap


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=5, check=False)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _fmt(x: Any) -> str:
    if x is None:
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "**no**"
    if isinstance(x, float):
        if x == 0:
            return "0"
        if abs(x) >= 100:
            return f"{x:,.0f}"
        if abs(x) >= 10:
            return f"{x:.1f}"
        if abs(x) >= 0.01:
            return f"{x:.3g}"
        return f"{x:.2e}"
    return str(x)


def write_markdown(path: Path, lines: list[dict[str, Any]], *, machine: dict[str, Any], command: str,
                   started: datetime, seconds: float, areas: list[str], quick: bool) -> None:
    out = [
        "# Argus benchmark results",
        "",
        f"- **Command:** `{command}`",
        f"- **Date:** {started.strftime('%Y-%m-%d %H:%M UTC')}, {seconds / 60:.1f} min, commit `{_git_commit()}`"
        f"{' (QUICK smoke mode: sizes too small to quote)' if quick else ''}",
        f"- **Machine:** {machine['cpu']}, {machine['cores']} cores, {machine['mem_gb']} GB RAM, "
        f"Python {machine['python']}, no GPU visible; load average at start {machine.get('load_avg_start')}",
        "- Every figure is a ratio to a baseline measured in the same run (shared, noisy machines). "
        "See bench/README.md for what each benchmark does.",
        "",
    ]
    targeted = [r for r in lines if r.get("target") and not r.get("skipped")]
    if targeted:
        out += ["## Targets", "",
                "| area | result | value | ratio to baseline | target | met | why / notes |",
                "|---|---|---|---|---|---|---|"]
        for r in targeted:
            out.append(f"| {r['bench']} | {r['name']} | {_fmt(r['value'])} {r['unit']} | {_fmt(r['ratio'])} | "
                       f"{r['target']} | {_fmt(r['meets_target'])} | {(r.get('note') or '').replace('|', '/')} |")
        out.append("")
    for area in areas:
        rows = [r for r in lines if r["bench"] == area]
        if not rows:
            continue
        out += [f"## {TITLES.get(area, area)}", "",
                "| result | value | unit | baseline | baseline value | ratio | target | met | notes |",
                "|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            if r.get("skipped"):
                out.append(f"| {r['name']} | — | {r['unit']} | {r['baseline']} | — | — | {r['target'] or '—'} | — "
                           f"| skipped: {r['skipped']} {r.get('note') or ''} |")
                continue
            params = ", ".join(f"{k}={v}" for k, v in r["params"].items())
            note = (r.get("note") or "") + (f" <br>_params: {params}_" if params else "")
            out.append(f"| {r['name']} | {_fmt(r['value'])} | {r['unit']} | {r['baseline']} | "
                       f"{_fmt(r['baseline_value'])} | {_fmt(r['ratio'])} | {r['target'] or '—'} | "
                       f"{_fmt(r['meets_target'])} | {note.replace('|', '/')} |")
        out.append("")
    path.write_text("\n".join(out))


def _run_areas(areas: list[str], args: argparse.Namespace, tmp: str, emit: Callable[[Result], None],
               log: Callable[[str], None], failed: list[str]) -> None:
    for area in areas:
        ctx = Context(quick=args.quick, gpu=args.gpu, work_dir=Path(tmp) / area, emit=emit, log=log)
        ctx.work_dir.mkdir(parents=True)
        t0 = time.monotonic()
        log(f"{area}: start")
        try:
            module = importlib.import_module(f"bench.{area}")
            module.run(ctx)
        except Exception as e:  # one broken area must not hide the others' results
            failed.append(area)
            log(f"{area}: FAILED: {type(e).__name__}: {e}\n{traceback.format_exc()}")
            emit(Result(area, "error", None, "", "", None, skipped=f"error: {type(e).__name__}: {e}"))
        log(f"{area}: done in {time.monotonic() - t0:.1f}s")


def main(argv: list[str] | None = None) -> int:
    rest = list(sys.argv[1:] if argv is None else argv)
    if rest[:1] == ["soak"]:  # ``argus bench soak --minutes N --load X``: a long run of its own (bench/soak.py)
        from bench import soak

        return soak.main(rest[1:])
    args = build_parser().parse_args(argv)
    areas = [a for a in AREAS if (a in args.only if args.only else (a != "gpu" or args.gpu))]
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.ERROR)
    machine = machine_info()
    machine["load_avg_start"] = load_avg()
    command = "argus bench" + "".join(f" {shlex.quote(a)}" for a in (argv if argv is not None else sys.argv[1:]))
    started = datetime.now(UTC)
    t_start = time.monotonic()
    lines: list[dict[str, Any]] = []
    failed: list[str] = []

    def emit(r: Result) -> None:
        line = r.as_json(machine)
        lines.append(line)
        sys.stdout.write(json.dumps(line, sort_keys=True) + "\n")
        sys.stdout.flush()

    def log(msg: str) -> None:
        sys.stderr.write(f"[bench {time.monotonic() - t_start:6.1f}s] {msg}\n")
        sys.stderr.flush()

    with tempfile.TemporaryDirectory(prefix="argus-bench-") as tmp:
        from bench import servers

        early = [n for a, n in (("models", "triton"), ("bus", "kafka")) if a in areas]
        if args.quick and early:
            servers.prestart(early, Path(tmp) / "servers")
        try:
            _run_areas(areas, args, tmp, emit, log, failed)
        finally:
            servers.stop_all()
    seconds = time.monotonic() - t_start
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.jsonl").write_text("".join(json.dumps(x, sort_keys=True) + "\n" for x in lines))
    write_markdown(args.out / "RESULTS.md", lines, machine=machine, command=command, started=started,
                   seconds=seconds, areas=areas, quick=args.quick)
    log(f"wrote {args.out / 'RESULTS.md'} ({len(lines)} results, {seconds:.0f}s)"
        + (f"; FAILED areas: {failed}" if failed else ""))
    return 1 if failed else 0
