#!/usr/bin/env python3
"""Generate deploy/grafana/argus-dashboard.json (standard Grafana dashboard JSON, schemaVersion 39).

``python deploy/grafana/build_dashboard.py`` rewrites the file; ``--check FILE`` exits 1 if FILE differs from what
this script generates (tools/k8s_check.py runs that, so the JSON never drifts from this source).

Rules for every expression (an end-to-end test runs each ``expr`` against Prometheus scraping a short, healthy run
and fails on an empty result):
- use only series that exist from the first scrape of a healthy stage: unlabelled metrics (histograms, lag, up,
  gallery size) and per-camera ingest series, which the ingest stage sets for every camera every second;
- series created on first use (errors_total{kind}, sink_failures_total{sink}, matches_total{watchlist},
  alerts_total{camera}, faces_total{outcome}) end in ``or vector(0)`` (or a zero per camera), so "none yet" is 0;
- throughput comes from ``<stage>_batch_size_sum`` (messages consumed; exists at 0 from start).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from argus.topology import CONSUMING_STAGES, STAGES

OUT = Path(__file__).resolve().parent / "argus-dashboard.json"
CONSUMERS = CONSUMING_STAGES
DS = {"type": "prometheus", "uid": "${datasource}"}


def target(expr: str, legend: str, ref: str) -> dict[str, Any]:
    return {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref, "range": True}


def panel(title: str, targets: list[tuple[str, str]], unit: str, description: str) -> dict[str, Any]:
    return {
        "type": "timeseries", "title": title, "description": description, "datasource": DS,
        "fieldConfig": {"defaults": {"unit": unit, "custom": {"drawStyle": "line", "lineWidth": 1,
                                                               "fillOpacity": 10, "showPoints": "never"}},
                        "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["lastNotNull", "max"]},
                    "tooltip": {"mode": "multi", "sort": "desc"}},
        "targets": [target(e, legend, chr(ord("A") + i)) for i, (e, legend) in enumerate(targets)],
    }


def p95(metric: str) -> str:
    return f"histogram_quantile(0.95, sum by (le) (rate({metric}_bucket[5m])))"


def panels() -> list[dict[str, Any]]:
    return [
        # ---- cameras
        panel("Frames published per camera (fps)",
              [("sum by (camera) (rate(argus_ingest_frames_published_total[1m]))", "{{camera}}")], "fps",
              "Sampled frames each camera puts on argus.frames.v2."),
        panel("Frames dropped per camera (per s)",
              [("sum by (camera) (rate(argus_ingest_frames_dropped_total[1m]))", "{{camera}}")], "fps",
              "Dropped by policy (ARGUS_INGEST_QUEUE per camera, oldest first) because ingest could not publish "
              "fast enough; 0 when healthy."),
        panel("Frames skipped by the motion gate (per s)",
              [("sum by (camera, reason) (rate(argus_ingest_frames_skipped_total[1m]))", "{{reason}} {{camera}}"),
               ("sum by (camera) (rate(argus_ingest_keyframes_total[1m]))", "keyframes {{camera}}")], "fps",
              "ARGUS_MOTION_GATING: frames in which nothing moved, never encoded, published or decoded (reason "
              "no_motion), and the full-frame keyframes (every ARGUS_MOTION_KEYFRAME_S). A camera that never skips "
              "sees motion all the time: a swaying tree wants a motion_mask in the registry."),
        panel("Detector load (images/s, Mpixel/s)",
              [("sum by (kind) (rate(argus_inference_detector_images_total[1m]))", "images {{kind}}"),
               ("sum by (kind) (rate(argus_inference_detector_pixels_total[1m])) / 1e6", "Mpixel {{kind}}"),
               ("sum by (reason) (rate(argus_inference_detections_skipped_total[1m]))", "skipped ({{reason}})")],
              "none",
              "What the face detector runs on: whole frames (full: keyframes, gating off) and model-sized crops "
              "around motion and open tracks (crop). MTCNN's time follows the pixels. Skipped (interval): frames "
              "between two detections at ARGUS_DETECT_INTERVAL, carried by the camera's tracks."),
        panel("Camera faults (last 5 min)",
              [("sum by (camera) (increase(argus_ingest_watchdog_trips_total[5m]))", "hung reads {{camera}}"),
               ("sum by (camera) (increase(argus_ingest_read_errors_total[5m]))", "open/read errors {{camera}}")],
              "none", "Reads abandoned by the watchdog (a wedged stream) and failed opens/reads per camera; a "
                      "flapping camera shows errors and reconnects in every window."),
        panel("Camera streaming (1 = up)",
              [("max by (camera) (argus_ingest_camera_up)", "{{camera}}")], "none",
              "argus_ingest_camera_up: 0 while a camera reconnects."),
        panel("Seconds since the newest frame",
              [("time() - max by (camera) (argus_ingest_last_frame_timestamp_seconds)", "{{camera}}")], "s",
              "Capture age of each camera's newest frame; ArgusCameraSilent fires above 60 s."),
        panel("Ingest queue depth and reconnects",
              [("max by (camera) (argus_ingest_queue_depth)", "queue {{camera}}"),
               ("sum by (camera) (increase(argus_ingest_reconnects_total[5m]))", "reconnects/5m {{camera}}")],
              "none", "Frames waiting per camera, and stream reconnects in the last 5 minutes."),
        # ---- stages
        panel("Throughput per stage (messages/s)",
              [("sum(rate(argus_ingest_frames_published_total[1m]))", "ingest (frames out)"),
               *[(f"sum(rate(argus_{s}_batch_size_sum[1m]))", f"{s} (in)") for s in CONSUMERS]], "ops",
              "Messages consumed per second by each stage (frames published for ingest)."),
        panel("Processing time per batch, p95",
              [(p95(f"argus_{s}_processing_seconds"), s) for s in CONSUMERS], "s",
              "Wall time of one micro-batch: poll to commit. NaN while a stage has processed nothing in 5 min."),
        panel("Capture-to-output latency, p95",
              [(p95(f"argus_{s}_latency_seconds"), s) for s in CONSUMERS], "s",
              "Seconds from frame capture to the stage's output (alerter: alerts published)."),
        panel("Batch size, p50 and mean",
              [*[(f"histogram_quantile(0.5, sum by (le) (rate(argus_{s}_batch_size_bucket[5m])))", f"p50 {s}")
                 for s in CONSUMERS],
               ("sum(rate(argus_inference_batch_size_sum[5m])) / sum(rate(argus_inference_batch_size_count[5m]))",
                "mean inference")], "none",
              "Messages per processed micro-batch (ARGUS_<STAGE>_BATCH_MAX caps each stage)."),
        panel("Consumer lag per stage (messages)",
              [(f"sum(argus_{s}_consumer_lag)", s) for s in CONSUMERS], "none",
              "Messages waiting on each consumer group (argus-<stage>); KEDA scales inference and matcher on it."),
        panel("Errors per stage (per s)",
              [(f"sum(rate(argus_{s}_errors_total[5m])) or vector(0)", s) for s in STAGES], "ops",
              "Dead-lettered items and transient-failure retries (errors_total by kind)."),
        panel("Stages up",
              [(f"max by (__name__) ({{__name__=~\"argus_({'|'.join(STAGES)})_up\"}})", "{{__name__}}")],
              "none", "1 while each stage's loop runs."),
        # ---- inference and matching
        panel("Model time per inference batch, p95",
              [(p95("argus_inference_batch_model_seconds"), "models")], "s",
              "Time in Triton (detector, embedder, emotion) per micro-batch."),
        panel("Faces found (per s)",
              [("sum(rate(argus_inference_faces_total[1m])) or vector(0)", "faces"),
               ("sum by (outcome) (rate(argus_matcher_faces_total[1m])) or vector(0)", "matcher {{outcome}}")],
              "ops", "Faces from inference, and what the matcher did with them (embedded, not_embedded, "
                     "low_quality)."),
        panel("Face tracks",
              [("sum(argus_inference_tracks_active)", "open in inference"),
               ("sum(argus_matcher_tracks_open)", "decided on by the matcher"),
               ("sum(rate(argus_inference_faces_embedded_total[5m])) / clamp_min(sum(rate("
                "argus_inference_faces_total[5m])), 1e-9) or vector(0)", "share of faces embedded")], "none",
              "Tracks per replica, and the share of detected faces the tracker spends the embedder on."),
        panel("Track decisions by outcome (per min)",
              [("sum by (outcome) (rate(argus_matcher_track_decisions_total[5m]) * 60) or vector(0)",
                "{{outcome}}")], "none",
              "Why tracks name somebody or not: matched, below_threshold, ambiguous (runner-up too close), "
              "not_listed (closest to a cohort face), too_few_faces, no_usable_face."),
        panel("Track verdicts per watch-list (per min)",
              [("sum by (watchlist) (rate(argus_matcher_matches_total[5m]) * 60) or vector(0)", "{{watchlist}}"),
               ("sum(rate(argus_alerter_alert_revisions_total[5m]) * 60)", "alert revisions")],
              "none", "Tracks that named a listed person (or changed their verdict), and the alerts they revised."),
        panel("Track emotion by decision path (per min)",
              [("sum by (path) (rate(argus_matcher_emotion_paths_total[5m]) * 60) or vector(0)", "{{path}}")],
              "none", "What decided each track's emotion (paper 002's ECRL): cnn (accepted class or no landmark "
                      "features), confirmed (rules agree), cnn_kept (rules disagree), rules (disgust: rules win)."),
        panel("Gallery",
              [("max(argus_matcher_gallery_persons)", "persons"),
               ("max(argus_matcher_gallery_version)", "version")], "none",
              "Enrolled persons and gallery version the matchers use."),
        # ---- alerts
        panel("Alerts per camera (last hour)",
              [("sum by (camera) (increase(argus_alerter_alerts_total[1h]))"
                " or sum by (camera) (argus_ingest_camera_up * 0)", "{{camera}}")], "none",
              "Alerts raised per camera; cameras without an alert show 0."),
        panel("Sightings and suppressed repeats (per s)",
              [("sum(rate(argus_alerter_events_total[5m]))", "events written"),
               ("sum(rate(argus_alerter_alerts_suppressed_total[5m]))", "suppressed (cooldown)")], "ops",
              "Sightings stored in the event history, and those inside an open cooldown window."),
        panel("Alert sink failures (last hour)",
              [("sum by (sink) (increase(argus_alerter_sink_failures_total[1h])) or vector(0)", "{{sink}}")],
              "none", "Failed deliveries per sink; ArgusAlertSinkFailing pages on any."),
        panel("Webhook outbox",
              [("max(argus_alerter_webhook_outbox_depth) or vector(0)", "queued alerts"),
               ("max(argus_alerter_webhook_outbox_oldest_age_seconds) or vector(0)", "oldest waiting (s)"),
               ("sum by (outcome) (increase(argus_alerter_webhook_deliveries_total[1h])) or vector(0)",
                "{{outcome}} /h")], "none",
              "Alerts waiting for a slow or failing receiver (delivered when it answers 2xx again); dropped = "
              "oldest removed from a full outbox (by policy), rejected = refused for good (4xx)."),
    ]


def dashboard() -> dict[str, Any]:
    ps = panels()
    for i, p in enumerate(ps):
        p["id"] = i + 1
        p["gridPos"] = {"h": 8, "w": 12, "x": (i % 2) * 12, "y": (i // 2) * 8}
    return {
        "title": "Argus pipeline", "uid": "argus-pipeline", "schemaVersion": 39, "version": 1, "editable": True,
        "tags": ["argus"], "timezone": "browser", "refresh": "30s", "time": {"from": "now-1h", "to": "now"},
        "annotations": {"list": []},
        "templating": {"list": [{"name": "datasource", "type": "datasource", "query": "prometheus",
                                 "label": "Prometheus", "current": {}, "hide": 0}]},
        "panels": ps,
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Generate the Argus Grafana dashboard JSON.")
    ap.add_argument("--check", type=Path, metavar="FILE", help="exit 1 if FILE differs from the generated JSON")
    args = ap.parse_args(argv)
    if args.check is not None:
        if args.check.read_text() != render():
            print(f"{args.check}: expected the output of {Path(__file__).name}, got a different file "
                  f"(run python {Path(__file__).name})", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(render())
    print(f"wrote {OUT} ({len(dashboard()['panels'])} panels)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
