"""Operator API: alert-list latency over a large history, and requests/s on one core, against a bare /healthz.

The history lives in the real MongoDB-wire server (``secantusdb`` from ``argus_dev.devservers``, the CI and dev stand-in
for MongoDB), filled through the project's own ``MongoEventStore`` (bulk event upserts, one upsert per alert) with
synthetic but well-formed sightings: 12 cameras, 400 persons, one alert per ``EVENTS_PER_ALERT`` events. A full run
fills for at most ``FILL_BUDGET_S`` and up to 1M events, and reports how many it reached: secantusdb takes ~220
events/s through the store's bulk upserts (four secondary indexes and a TTL index; 2,000 events take ~9 s here, a
plain insert_many of the same documents ~3 s), so a full run reaches tens of thousands of events, not 1M. A real
MongoDB is far faster; the latency is reported with the count reached.

The API runs as ``argus run api`` in its own process pinned to ONE core (the client, httpx with keep-alive, runs
in this process on another core when there is one), with an analyst key and the rate limit lifted. Each result's
baseline is ``GET /healthz`` on the same server in the same run (no authentication, no store): the ratio is what
authentication, the store query, the audit record every history read appends, and serialisation cost on top of
the HTTP stack itself.

- ``alerts_list_p50`` / ``_p99``: ``GET /api/v1/alerts?limit=50`` (newest first, first page), ms.
- ``alerts_list_camera_page5_p50``: one camera's alerts, the fifth page through the cursor, ms.
- ``alerts_list_rps``: sequential requests/s of the first-page list on the one server core.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from argus.schemas import AlertV3
from argus.store.base import SightingEvent
from argus.store.mongo import MongoEventStore
from argus_dev.devservers import free_port
from bench.common import REPO_ROOT, BenchError, Context, Result, latencies, paired_rates, percentile
from bench.servers import serve

AREA = "api"
CAMERAS = 12
PERSONS = 400
EVENTS_PER_ALERT = 4
BATCH = 2000
FILL_BUDGET_S = 300.0
MAX_EVENTS = 1_000_000
DATABASE = "argus_bench_api"


def _event(i: int, ts: float) -> SightingEvent:
    cam = f"cam-{i % CAMERAS}"
    pid = f"P-{i % PERSONS}"
    return SightingEvent(
        event_id=f"{cam}:{i}:0", camera_id=cam, seq=i, face_index=0, person_id=pid, display_name=f"Person {pid}",
        watchlist="default", score=0.95, threshold=0.94, margin=0.05,
        candidates=({"person_id": pid, "display_name": f"Person {pid}", "watchlist": "default", "score": 0.95},),
        emotion="neutral", emotion_probs=(0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0), det_score=0.99,
        quality={"size": 80.0, "blur": 120.0}, box=(10.0, 10.0, 90.0, 90.0), ts_capture=ts, ts_match=ts + 0.2,
        gallery_version=1, track_id=f"t{i}")


def _alert(e: SightingEvent) -> AlertV3:
    return AlertV3.model_validate({
        "alert_id": f"a{e.seq:08d}", "event_id": e.event_id, "track_id": e.track_id, "camera_id": e.camera_id,
        "camera_name": e.camera_id, "location": {"lat": 52.5, "lon": 13.4, "address": "bench", "zone": "z"},
        "person_id": e.person_id, "display_name": e.display_name, "watchlist": e.watchlist, "score": e.score,
        "threshold": e.threshold, "margin": e.margin, "candidates": list(e.candidates), "emotion": e.emotion,
        "emotion_probs": list(e.emotion_probs), "det_score": e.det_score, "quality": e.quality, "box": list(e.box),
        "crop_jpeg": b"", "seq": e.seq, "ts_capture": e.ts_capture, "ts_alert": e.ts_capture + 0.5,
        "gallery_version": 1})


def fill(store: MongoEventStore, *, target: int, budget_s: float, log: Any) -> tuple[int, int, float]:
    """Events and alerts written, and seconds taken; stops at ``target`` events or when the budget is spent."""
    t0 = time.monotonic()
    start = time.time() - 30 * 86400  # a month of history, one event every few seconds
    step = 30 * 86400 / max(target, 1)
    n = alerts = 0
    while n < target and time.monotonic() - t0 < budget_s:
        batch = [_event(i, start + i * step) for i in range(n, min(n + BATCH, target))]
        store.put_events(batch)
        for e in batch:
            if e.seq % EVENTS_PER_ALERT == 0:
                store.put_alert(_alert(e))
                alerts += 1
        n += len(batch)
        if n % 50_000 < BATCH:
            log(f"api: {n:,} events, {alerts:,} alerts in {time.monotonic() - t0:.0f}s")
    return n, alerts, time.monotonic() - t0


@contextmanager
def api_server(env: dict[str, str], port: int, core: int | None) -> Iterator[str]:
    def pin() -> None:
        if core is not None:
            os.sched_setaffinity(0, {core})

    proc = subprocess.Popen([sys.executable, "-m", "argus.cli", "run", "api"], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=pin)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise BenchError(f"argus run api exited with {proc.returncode}: {err[-2000:]}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise BenchError("argus run api did not answer /healthz within 60 s")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def run(ctx: Context) -> None:
    target = 2_000 if ctx.quick else MAX_EVENTS
    budget = 30.0 if ctx.quick else FILL_BUDGET_S
    with serve(ctx, "mongo") as mongo:
        store = MongoEventStore(uri=mongo.address, database=DATABASE, retention_days=None)
        try:
            n_events, n_alerts, fill_s = fill(store, target=target, budget_s=budget, log=ctx.log)
            from argus.api.auth import create_api_key

            _, token = create_api_key(store, name="bench", role="analyst", actor="bench")
        finally:
            store.close()
        port = free_port()
        cores = sorted(os.sched_getaffinity(0))
        server_core = cores[0] if len(cores) > 1 else None
        if len(cores) > 1:
            os.sched_setaffinity(0, set(cores[1:]))
        env = {k: v for k, v in os.environ.items() if not k.startswith("ARGUS_")}
        env.update(ARGUS_STORE="mongodb", ARGUS_MONGO_URI=mongo.address, ARGUS_MONGO_DATABASE=DATABASE,
                   ARGUS_API_PORT=str(port), ARGUS_METRICS_PORT="0", ARGUS_GALLERY="memory",
                   ARGUS_API_RATE_PER_S="100000", ARGUS_API_RATE_BURST="100000", ARGUS_LOG_LEVEL="WARNING",
                   ARGUS_DATA_DIR=str(ctx.work_dir / "api-data"))
        params = {"events": n_events, "alerts": n_alerts, "fill_s": round(fill_s, 1),
                  "fill_events_per_s": round(n_events / fill_s) if fill_s else None,
                  "server_cores": 1 if server_core is not None else len(cores), "store": "secantusdb (MongoDB wire)"}
        try:
            with api_server(env, port, server_core) as base, httpx.Client(
                    base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
                _measure(ctx, client, params)
        finally:
            os.sched_setaffinity(0, set(cores))


def _get(client: httpx.Client, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    r = client.get(path, params=params)
    if r.status_code != 200:
        raise BenchError(f"GET {path}: expected 200, got {r.status_code}: {r.text[:300]}")
    out: dict[str, Any] = r.json()
    return out


def _measure(ctx: Context, client: httpx.Client, params: dict[str, Any]) -> None:
    n = 40 if ctx.quick else 400
    first = _get(client, "/api/v1/alerts", {"limit": 50})
    if not first.get("items"):
        raise BenchError("the alert list came back empty: the fill did not reach the API's store")

    def health() -> None:
        _get(client, "/healthz")

    def alerts() -> None:
        _get(client, "/api/v1/alerts", {"limit": 50})

    def camera_page5() -> None:
        cursor = None
        for _ in range(5):
            q: dict[str, Any] = {"limit": 50, "camera": "cam-3"}
            if cursor:
                q["cursor"] = cursor
            cursor = _get(client, "/api/v1/alerts", q).get("next_cursor")

    hl = latencies(health, n=n)
    al = latencies(alerts, n=n)
    cl = [x / 5 for x in latencies(camera_page5, n=max(5, n // 10))]
    h50, h99 = percentile(hl, 50) * 1e3, percentile(hl, 99) * 1e3
    p = {**params, "requests": n, "page": 50}
    ctx.emit(Result(AREA, "alerts_list_p50", percentile(al, 50) * 1e3, "ms", "GET /healthz p50 (ms)", h50,
                    params=p, note="first page of 50, newest first; each read appends one audit record"))
    ctx.emit(Result(AREA, "alerts_list_p99", percentile(al, 99) * 1e3, "ms", "GET /healthz p99 (ms)", h99,
                    params=p))
    ctx.emit(Result(AREA, "alerts_list_camera_page_p50", percentile(cl, 50) * 1e3, "ms per page",
                    "GET /healthz p50 (ms)", h50, params={**p, "pages": 5, "filter": "camera"},
                    note="one camera's alerts, pages 1-5 through the keyset cursor"))
    a_rps, h_rps = paired_rates(alerts, health, items_a=1, items_b=1, min_time_s=ctx.min_time_s * 2,
                                rounds=ctx.rounds)
    ctx.emit(Result(AREA, "alerts_list_rps", a_rps, "requests/s", "GET /healthz (requests/s)", h_rps,
                    params=p, note="sequential keep-alive client; the server on one core"))


if __name__ == "__main__":  # a quick look without the harness: python -m bench.api
    import json

    c = Context(quick=True, gpu=False, work_dir=Path("/tmp/argus-bench-api"), emit=lambda r: print(json.dumps(
        r.as_json({}))), log=lambda m: print(m, file=sys.stderr))
    c.work_dir.mkdir(parents=True, exist_ok=True)
    run(c)
