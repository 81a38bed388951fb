"""Motion gating (issue 12): cameras per 2-core node with the gated pipeline vs today's per-frame pipeline.

Both pipelines see the same rendered frames of the generated scenes (argus.scenes), in lockstep, one frame at a
time, each with its own real stage processors and state (ingest's gate + JPEG encode, then the inference, matcher
and alerter processors of services/, with their trackers, gallery and event store):

- **baseline, per-frame**: ``ARGUS_MOTION_GATING=false`` — every frame encoded, published, decoded and detected
  whole (what runs today);
- **gated**: ``ARGUS_MOTION_GATING=true`` (keyframe every ``ARGUS_MOTION_KEYFRAME_S``, 5 s) and
  ``ARGUS_DETECT_REGIONS=true`` — still frames skipped in ingest, the rest detected in crops around motion and
  tracks, keyframes whole;
- **gated + interval**: the same and ``ARGUS_DETECT_INTERVAL=4`` — inference detects every 4th frame of the
  camera (keyframes and motion onset always) and lets the tracker carry the three in between (not decoded, detected
  or embedded; a camera with a track of one hit is detected around that track only).

The headline results ``cameras_per_node_quiet`` / ``_busy`` report the configuration recommended as default: gated +
interval when it keeps every alert on every scene (same alerts, zero missed listed visits, no false alert), else
gated alone; each non-baseline configuration also has its own line (``cameras_per_node_<scene>_<lane>``).

**Capacity is measured by per-frame cost on one core, not by running many cameras**: the CPU time
(``time.process_time``, ONNX Runtime on one thread) that ingest (gate, encode) and inference (decode, detect,
align, embed, emotion) spend on a scene, per second of scene, gives the cores one 5-fps camera needs; a 2-core
node holds ``2 / that`` cameras. Rendering (the camera) and the matcher and alerter (other nodes, ~1 % of the
cost) are not counted. The figure is what a node sustains with both cores busy, before any queueing headroom.

Quiet = ``long_empty`` (3 min of street, people on screen ~5 % of the time, trees swaying), busy = ``crowd``
(20 people, on screen ~85 % of the time). Alert equality is checked on every scene with a listed subject: the same
(person, visit) alerts and zero missed visits with gating as without. Time to alert is in capture time: from the
first frame where the listed face is findable (>= 24 px, not occluded) to the frame whose analysis raised the alert
(processing adds its per-frame cost, tens of ms, on top).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry

from argus.bus.base import Record
from argus.bus.memory import MemoryBus
from argus.config import Settings, load_settings
from argus.gallery.base import Person
from argus.gallery.memory import MemoryGallery
from argus.imaging import encode_jpeg
from argus.ingest.gating import CameraGates
from argus.metrics import StageMetrics
from argus.runtime.resources import Resources
from argus.runtime.runner import Item, Output
from argus.scenes import Scene, crowd, listed_pass_once, long_empty, pick_watchlist
from argus.schemas import TOPIC_FACES, TOPIC_FRAMES, TOPIC_MATCHES, AlertV3, FacesV3, FrameV2, MatchesV3, encode
from argus.store.sqlite import SqliteEventStore
from argus.trackeval import (
    Sighting,
    VisitTruth,
    count_alerts,
    embed_patches,
    identity_of,
    match_truth,
    track_truth,
)
from bench.common import Context, Result

CAMERA = "scene-cam"
NODE_CORES = 2
FPS = 5.0
LISTED = "default"
VISIBLE_PX = 24.0  # a visit counts from its first face this big and not occluded (argus.trackeval's rule)
COOLDOWN_S = 60.0
DETECT_INTERVAL = 4  # the gated + interval lane: 0.8 s between detections at 5 fps (tracks end after 2 s)
LANES: dict[str, dict[str, Any]] = {"per_frame": {"gating": False}, "gated": {"gating": True},
                                    "gated_interval": {"gating": True, "detect_interval": DETECT_INTERVAL}}
QUIET_WINDOW = (240, 420)  # long_empty frames: 48-84 s, the subject passes at ~60-65 s
CAMERAS_TOML = """[[camera]]
id = "scene-cam"
name = "Generated scene"
url = "scene.mp4"
fps = 5

[camera.location]
lat = 52.5
lon = 13.4
address = "Generated street 1"
zone = "bench"
"""


@dataclass
class Lane:
    """One pipeline variant over one scene: its processors, its CPU time and what came out."""

    name: str
    gates: CameraGates
    resources: Resources
    registry: CollectorRegistry
    inference: Any
    matcher: Any
    alerter: Any
    cpu_ingest: float = 0.0
    cpu_inference: float = 0.0
    frames: int = 0
    published: int = 0
    keyframes: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    alerts: list[AlertV3] = field(default_factory=list)
    faces: list[tuple[int, str, tuple[float, float, float, float]]] = field(default_factory=list)  # seq, track, box
    offset: int = 0

    def metric(self, name: str, **labels: str) -> float:
        return float(self.registry.get_sample_value(name, labels) or 0.0)

    @property
    def detector_images(self) -> float:
        return sum(self.metric("argus_inference_detector_images_total", kind=k) for k in ("full", "crop"))

    @property
    def detector_pixels(self) -> float:
        return sum(self.metric("argus_inference_detector_pixels_total", kind=k) for k in ("full", "crop"))

    @property
    def embedded(self) -> float:
        return self.metric("argus_inference_faces_embedded_total")

    @property
    def interval_skipped(self) -> float:
        return self.metric("argus_inference_detections_skipped_total", reason="interval")

    def close(self) -> None:
        store = self.resources.__dict__.get("store")
        if store is not None:
            store.close()  # the pipeline and gallery are shared by the lanes: run_scene closes them


@dataclass(frozen=True, kw_only=True)
class LaneReport:
    name: str
    frames: int
    seconds: float  # scene seconds covered
    cpu_s: float  # ingest + inference CPU seconds
    cpu_ingest_s: float
    published: int
    keyframes: int
    skipped: dict[str, int]
    detector_images: float
    detector_pixels: float
    embedded: float
    interval_skipped: float  # published frames the detector skipped (ARGUS_DETECT_INTERVAL)
    alerts: tuple[tuple[str, str | None], ...]  # (person, visit) per alert opened, in order
    listed_visits: int
    missed_visits: int
    false_alerts: int
    times_to_alert: tuple[float, ...]
    people_on_screen: float  # share of the frames with a face

    @property
    def cores_per_camera(self) -> float:
        return self.cpu_s / self.seconds

    @property
    def cameras_per_node(self) -> float:
        return NODE_CORES / self.cores_per_camera if self.cpu_s > 0 else math.inf

    def per_minute(self, n: float) -> float:
        return n * 60.0 / self.seconds

    def as_dict(self) -> dict[str, Any]:
        return {"frames": self.frames, "published": self.published, "keyframes": self.keyframes,
                "skipped": self.skipped, "detect_interval_skipped": int(self.interval_skipped),
                "ms_per_frame": round(1000 * self.cpu_s / max(1, self.frames), 2),
                "cameras_per_node": round(self.cameras_per_node, 2),
                "detector_images_per_cam_min": round(self.per_minute(self.detector_images), 1),
                "detector_mpix_per_cam_min": round(self.per_minute(self.detector_pixels) / 1e6, 1),
                "embedder_faces_per_cam_min": round(self.per_minute(self.embedded), 1),
                "alerts": len(self.alerts), "listed_visits": self.listed_visits, "missed_visits": self.missed_visits,
                "false_alerts": self.false_alerts}


def settings_for(work: Path, *, gating: bool, detect_regions: bool = True, keyframe_s: float = 5.0,
                 detect_interval: int = 1) -> Settings:
    work.mkdir(parents=True, exist_ok=True)
    cams = work / "cameras.toml"
    cams.write_text(CAMERAS_TOML)
    return load_settings(data_dir=work, cameras_file=cams, metrics_port=0, ort_threads=1, sinks=["kafka"],
                         motion_gating=gating, motion_keyframe_s=keyframe_s, detect_regions=detect_regions,
                         detect_interval=detect_interval, cooldown_s=COOLDOWN_S)


def make_lane(name: str, work: Path, gallery: MemoryGallery, pipeline: Any, *, gating: bool,
              detect_regions: bool = True, keyframe_s: float = 5.0, detect_interval: int = 1) -> Lane:
    from argus_services.alerter.stage import AlerterProcessor
    from argus_services.inference.stage import InferenceProcessor
    from argus_services.matcher.stage import MatcherProcessor

    s = settings_for(work, gating=gating, detect_regions=detect_regions, keyframe_s=keyframe_s,
                     detect_interval=detect_interval)
    reg = CollectorRegistry()
    res = Resources(s, registry=reg, bus=MemoryBus(partitions=1), gallery=gallery, pipeline=pipeline,
                    store=SqliteEventStore(path=work / "events.sqlite"))
    gates = CameraGates(res.cameras.enabled(), enabled=s.motion_gating, keyframe_s=s.motion_keyframe_s)
    return Lane(name=name, gates=gates, resources=res, registry=reg,
                inference=InferenceProcessor(res, StageMetrics("inference", registry=reg)),
                matcher=MatcherProcessor(res, StageMetrics("matcher", registry=reg)),
                alerter=AlerterProcessor(res, StageMetrics("alerter", registry=reg), sinks=[]))


def _item(lane: Lane, topic: str, msg: FrameV2 | FacesV3 | MatchesV3) -> Item:
    lane.offset += 1
    return Item(Record(topic=topic, partition=0, offset=lane.offset, key=msg.key(), value=encode(msg),
                       timestamp_ms=0), msg)


def feed(lane: Lane, seq: int, ts: float, image: np.ndarray) -> None:
    """One camera frame through the lane: ingest (gate, encode: timed), inference (timed), matcher, alerter."""
    lane.frames += 1
    t0 = time.process_time()
    gate = lane.gates.gate(CAMERA, image, ts)
    if not gate.publish:
        lane.cpu_ingest += time.process_time() - t0
        lane.skipped[gate.skip or "?"] += 1
        return
    jpeg = encode_jpeg(image, quality=85)
    msg = FrameV2(camera_id=CAMERA, seq=seq, ts_capture=ts, ts_ingest=ts, width=image.shape[1],
                  height=image.shape[0], jpeg=jpeg, keyframe=gate.keyframe, gate=gate.gate,
                  motion=tuple((float(b[0]), float(b[1]), float(b[2]), float(b[3])) for b in gate.motion))
    t1 = time.process_time()
    lane.cpu_ingest += t1 - t0
    lane.published += 1
    lane.keyframes += gate.keyframe
    faces = [o.message for o in lane.inference.process([_item(lane, TOPIC_FRAMES, msg)])
             if isinstance(o, Output) and isinstance(o.message, FacesV3)]
    lane.cpu_inference += time.process_time() - t1
    if not faces:
        return
    lane.faces += [(f.seq, face.track_id, face.box) for f in faces for face in f.faces]
    matches = [o.message for o in lane.matcher.process([_item(lane, TOPIC_FACES, f) for f in faces])
               if isinstance(o, Output) and isinstance(o.message, MatchesV3)]
    if matches:
        lane.alerts += [o.message for o in lane.alerter.process([_item(lane, TOPIC_MATCHES, m) for m in matches])
                        if isinstance(o, Output) and isinstance(o.message, AlertV3)]


def build_gallery(scene: Scene, pipeline: Any, *, size: int = 5) -> tuple[MemoryGallery, tuple[str, ...]]:
    """The scene's subjects (and bank distractors) enrolled from photos the scene never shows."""
    watch = pick_watchlist(scene, min(size, len(scene.bank)))
    g = MemoryGallery(dim=128)
    g.enroll_many([(Person(person_id=p, display_name=p, watchlist=LISTED, enrolled_at=0.0),
                    embed_patches(pipeline, watch.enrollment[p])) for p in watch.identities],
                  actor="bench", reason="motion bench watch-list")
    return g, watch.identities


def visit_truth(truths: dict[int, Any]) -> tuple[VisitTruth, ...]:
    """Every visit on the frames seen, with its first findable face's capture time (argus.trackeval's rule)."""
    first: dict[str, float | None] = {}
    who: dict[str, str] = {}
    for _, t in sorted(truths.items()):
        for f in t.faces:
            who[f.visit_id] = f.identity
            if f.size >= VISIBLE_PX and not f.occluded and first.get(f.visit_id) is None:
                first[f.visit_id] = t.ts
            first.setdefault(f.visit_id, None)
    return tuple(VisitTruth(visit_id=v, identity=who[v], first_visible_ts=ts) for v, ts in first.items())


def report(lane: Lane, scene: Scene, frames: int, truths: dict[int, Any], listed: tuple[str, ...]) -> LaneReport:
    labels: dict[str, list[str | None]] = {}
    by_seq: dict[int, list[tuple[str, tuple[float, float, float, float]]]] = {}
    for seq, track, box in lane.faces:
        by_seq.setdefault(seq, []).append((track, box))
    for seq, faces in by_seq.items():
        truth = truths[seq]
        ks = match_truth(np.array([b for _, b in faces]), np.array([f.box for f in truth.faces]))
        for (track, _), k in zip(faces, ks, strict=True):
            labels.setdefault(track, []).append(truth.faces[k].visit_id if k is not None else None)
    sightings = []
    for a in lane.alerts:
        if a.revision != 1 or a.withdrawn:
            continue
        vid = track_truth(labels.get(a.track_id, []))
        sightings.append(Sighting(person_id=a.person_id, ts=a.ts_capture, event_id=a.event_id, visit_id=vid,
                                  identity=identity_of(vid), track_id=a.track_id))
    counts = count_alerts(sightings, visit_truth(truths), listed, cooldown_s=COOLDOWN_S)
    return LaneReport(name=lane.name, frames=lane.frames, seconds=frames / scene.fps,
                      cpu_s=lane.cpu_ingest + lane.cpu_inference, cpu_ingest_s=lane.cpu_ingest,
                      published=lane.published, keyframes=lane.keyframes, skipped=dict(lane.skipped),
                      detector_images=lane.detector_images, detector_pixels=lane.detector_pixels,
                      embedded=lane.embedded, interval_skipped=lane.interval_skipped,
                      alerts=tuple((s.person_id, s.visit_id) for s in sightings),
                      listed_visits=counts.listed_visits, missed_visits=counts.missed_visits,
                      false_alerts=counts.false_alerts, times_to_alert=counts.times_to_alert,
                      people_on_screen=people_share(truths))


def run_scene(scene: Scene, work: Path, *, start: int = 0, stop: int | None = None,
              lanes: dict[str, dict[str, Any]] | None = None, on_frame: Any = None) -> dict[str, LaneReport]:
    """Every frame of ``scene`` from ``start`` to ``stop`` through each lane in lockstep; a report per lane.

    ``lanes`` maps a lane name to make_lane's options (default: ``per_frame`` vs ``gated``)."""
    lanes = lanes or {"per_frame": {"gating": False}, "gated": {"gating": True}}
    models = Resources(settings_for(work / "models", gating=False), registry=CollectorRegistry())
    gallery, listed = build_gallery(scene, models.pipeline)
    built = {n: make_lane(n, work / n, gallery, models.pipeline, **kw) for n, kw in lanes.items()}
    end = scene.n_frames if stop is None else min(stop, scene.n_frames)
    n = end - start
    truths: dict[int, Any] = {}
    try:
        for i, ts, img, truth in scene.frames(start, end):
            truths[i] = truth
            for lane in built.values():
                feed(lane, i, ts, img)
            if on_frame is not None:
                on_frame(i, built)
        return {name: report(lane, scene, n, truths, listed) for name, lane in built.items()}
    finally:
        for lane in built.values():
            lane.close()
        models.close()


def _pct(xs: tuple[float, ...], q: float) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    return float(s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))])


def no_alert_lost(base: LaneReport, gated: LaneReport) -> bool:
    """Gating loses nothing: every (person, visit) alert of the per-frame pipeline is raised with gating too, no
    listed visit is missed and no alert names the wrong person (gating may find a visit the per-frame pipeline
    missed: a face in a crop is not smaller than in the frame, and MTCNN's grid falls differently)."""
    return set(base.alerts) <= set(gated.alerts) and gated.missed_visits == 0 and gated.false_alerts == 0


def people_share(truths: dict[int, Any]) -> float:
    """Share of the frames with a face on screen (the quiet/busy criterion: quiet <= 20 %)."""
    return sum(1 for t in truths.values() if t.faces) / max(1, len(truths))


LANE_TITLES = {"gated": "gated", "gated_interval": f"gated + detect interval {DETECT_INTERVAL}"}


def recommend(reps: dict[str, dict[str, LaneReport]]) -> str:
    """The configuration to recommend as default: gated + interval when it loses no alert on any scene (the same
    rule as gating alone must meet, against the per-frame pipeline), else gating alone."""
    ok = all(no_alert_lost(r["per_frame"], r["gated_interval"]) for r in reps.values())
    return "gated_interval" if ok else "gated"


def run(ctx: Context) -> None:
    quick = ctx.quick
    # Windows of the scenes (frame start, stop), so the area fits a shared 2-core machine: the quiet window is
    # 36 s of long_empty around its listed subject's pass (people on screen ~15 %), the busy one the first 12 s
    # of the crowd; listed_pass_once covers its subject's whole visit. Quick: a few frames of each.
    scenes: list[tuple[str, Scene, int, int]] = [
        ("quiet", long_empty(seed=0), 0 if quick else QUIET_WINDOW[0], 30 if quick else QUIET_WINDOW[1]),
        ("busy", crowd(seed=0), 0, 8 if quick else 60),
        ("listed", listed_pass_once(seed=0), 0, 8 if quick else 60),
    ]
    all_reps: dict[str, dict[str, LaneReport]] = {}
    for kind, scene, start, stop in scenes:
        t0 = time.monotonic()
        reps = all_reps[kind] = run_scene(scene, ctx.work_dir / scene.name, start=start, stop=stop, lanes=LANES)
        ctx.log(f"motion: {scene.name}: {reps['per_frame'].frames} frames in {time.monotonic() - t0:.0f}s: "
                + ", ".join(f"{n} {r.cameras_per_node:.1f}" for n, r in reps.items()) + " cameras/node")
    best = recommend(all_reps)
    same = {lane: all(no_alert_lost(r["per_frame"], r[lane]) for r in all_reps.values()) for lane in LANE_TITLES}
    for kind, scene, start, stop in scenes:
        reps = all_reps[kind]
        base = reps["per_frame"]
        n, share = base.frames, base.people_on_screen
        target = {"quiet": ">= 5x", "busy": ">= 2x"}.get(kind)
        need = 5.0 if kind == "quiet" else 2.0
        params = {"scene": scene.name, "frames": n, "window": f"frames {start}-{stop}",
                  "people_on_screen": round(share, 3), "fps": FPS,
                  "size": f"{scene.width}x{scene.height}", "keyframe_s": 5.0, "node_cores": NODE_CORES,
                  "measured": "CPU time per frame on one core (process_time, ORT 1 thread), not many cameras",
                  "baseline": base.as_dict(), **{lane: reps[lane].as_dict() for lane in LANE_TITLES}}

        def note(r: LaneReport, base: LaneReport = base, name: str = scene.name) -> str:
            return (f"{name}, people on screen {base.people_on_screen:.0%}, {LANE_TITLES[r.name]}: skipped "
                    f"{r.skipped} in ingest, {int(r.interval_skipped)} detections by interval; detector "
                    f"images/cam-min {r.per_minute(r.detector_images):.0f} vs "
                    f"{base.per_minute(base.detector_images):.0f}, embedder faces/cam-min "
                    f"{r.per_minute(r.embedded):.0f} vs {base.per_minute(base.embedded):.0f}; "
                    f"same alerts: {no_alert_lost(base, r)}")

        g = reps[best]
        ctx.emit(Result("motion", f"cameras_per_node_{kind}", g.cameras_per_node, "cameras (720p, 5 fps)",
                        "per-frame pipeline (cameras/node)", base.cameras_per_node,
                        target=target if not quick else None,  # a quick window is too short to judge a target
                        meets_target=(g.cameras_per_node / base.cameras_per_node >= need)
                        if target and not quick else None,
                        params={**params, "recommended": best}, note=f"recommended: {note(g)}"))
        for lane in LANE_TITLES:
            r = reps[lane]
            ctx.emit(Result("motion", f"cameras_per_node_{kind}_{lane}", r.cameras_per_node, "cameras (720p, 5 fps)",
                            "per-frame pipeline (cameras/node)", base.cameras_per_node,
                            params={"scene": scene.name, "lane": lane, **r.as_dict()}, note=note(r)))
        ctx.emit(Result("motion", f"frames_skipped_no_motion_{kind}", float(g.skipped.get("no_motion", 0)),
                        "frames", "frames sampled", float(n), params={"scene": scene.name, "skipped": g.skipped,
                                                                      "keyframes": g.keyframes},
                        note="skipped in ingest by reason (the share of frames never encoded, published, decoded)"))
        ctx.emit(Result("motion", f"detections_skipped_interval_{kind}", reps["gated_interval"].interval_skipped,
                        "frames", "frames sampled", float(n),
                        params={"scene": scene.name, "detect_interval": DETECT_INTERVAL,
                                "published": reps["gated_interval"].published},
                        note="published frames inference did not detect (tracks carry them; "
                             "argus_inference_detections_skipped_total{reason=interval})"))
        ctx.emit(Result("motion", f"detector_calls_per_camera_minute_{kind}", g.per_minute(g.detector_images),
                        "images/camera-minute", "per-frame pipeline", base.per_minute(base.detector_images),
                        params={"scene": scene.name, "lane": best,
                                "mpix_per_min": round(g.per_minute(g.detector_pixels) / 1e6, 1),
                                "per_frame_mpix_per_min": round(base.per_minute(base.detector_pixels) / 1e6, 1),
                                **{f"{lane}_images_per_min": round(reps[lane].per_minute(reps[lane].detector_images),
                                                                   1) for lane in LANE_TITLES}},
                        note="detector inputs (whole frames + crops); pixels in params: MTCNN's cost follows them"))
        ctx.emit(Result("motion", f"embedder_calls_per_camera_minute_{kind}", g.per_minute(g.embedded),
                        "faces/camera-minute", "per-frame pipeline", base.per_minute(base.embedded),
                        params={"scene": scene.name, "lane": best,
                                **{f"{lane}_per_min": round(reps[lane].per_minute(reps[lane].embedded), 1)
                                   for lane in LANE_TITLES}},
                        note="faces embedded (the tracker's budget decides)"))
    times = {lane: tuple(t for r in all_reps.values() for t in r[lane].times_to_alert)
             for lane in ("per_frame", *LANE_TITLES)}
    for name in ("p50", "p99"):
        q = 0.5 if name == "p50" else 0.99
        g_t, b_t = _pct(times[best], q), _pct(times["per_frame"], q)
        ctx.emit(Result("motion", f"time_to_alert_{name}", g_t, "s (capture time)", "per-frame pipeline", b_t,
                        params={"visits": len(times[best]), "lane": best,
                                **{lane: _pct(times[lane], q) for lane in LANE_TITLES}},
                        note=f"{LANE_TITLES[best]}: first findable frame of a listed face to the frame that raised "
                             "its alert",
                        skipped=None if g_t is not None and b_t is not None else "no listed visit alerted"))
    ctx.emit(Result("motion", "same_alerts_as_per_frame", 1.0 if same[best] else 0.0, "bool", "expected", 1.0,
                    target=None if quick else "no alert lost, zero missed visits",
                    meets_target=same[best] if not quick else None,
                    params={"lane": best, **same},
                    note=f"{LANE_TITLES[best]}, every scene above: each per-frame (person, visit) alert also raised, "
                         "no listed visit missed, no false alert (quick runs stop before the visits)"))
