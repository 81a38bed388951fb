"""Inference stage: JPEG frames in, tracked faces (box, landmarks, quality, track, embedding, emotion, crop) out.

Frames from all cameras are micro-batched by the runner (``ARGUS_INFERENCE_BATCH_MAX`` / ``ARGUS_BATCH_WAIT_MS``) and go
through the detector as one batch. Each camera's faces are associated into tracks (``argus.tracking``, state keyed
by camera — the topic's key — so a camera's frames always meet the same tracker), and only the faces worth it (the
first usable ones of a track, then only clearly better ones, at most ``ARGUS_TRACK_MAX_EMBEDDINGS``) go through
the embedder, in one batch. A frame with neither faces nor ended tracks produces no message (it is counted); a
corrupt JPEG is dead-lettered with its camera and sequence number and the rest of the batch goes on.

Where the detector looks: a keyframe (``FrameV2.keyframe``: gating off, the periodic full-frame pass, a camera's
first frame, a light change) is detected whole; a gated frame only in model-sized crops around where it moved and
around the camera's open tracks (argus.motion.detection_regions; ``ARGUS_DETECT_REGIONS=false``: whole frames),
all crops of the batch in one detector call. Alignment and the embedder always read the full-resolution frame.
The load is counted in ``detector_images_total`` / ``detector_pixels_total`` by kind (full, crop).

When the detector runs (``ARGUS_DETECT_INTERVAL``, N): on every N-th frame of a camera by seq, and always on a
keyframe, on the camera's first frame here, on motion onset (the first frame after a still stretch is past the
interval) and before its tracks could age out (half of ``ARGUS_TRACK_MAX_AGE_S`` since the last detection); in
between, a camera with a track of one hit is detected only in crops around those young tracks (a new face
is seen on every frame until its track has a velocity and its first embeddings; judged on the tracker as the
micro-batch starts). The decision is argus.motion.should_detect. A frame in between is not decoded, detected,
tracked or embedded: the tracker is simply not fed, its tracks keep their last hit and predict on (they end only after
``track_max_age_s`` of capture time without a hit, which the rule above never lets pass), and the frame produces
no message; it is counted in ``detections_skipped_total{reason="interval"}``. The per-camera state (the last
detected seq and capture time, and the recent decisions, so a redelivered frame gets the same answer) lives in
this processor next to the tracker: topics are keyed by camera, so a camera's frames all come here in order and
a partition move moves a camera whole — the new replica starts with no state and detects the first frame.

When a camera's partition moves to another replica (rebalance, restart), its tracks restart there: a visit in
progress continues as a new track. Nothing is lost (the uncommitted frames are redelivered) and nothing doubles
(the alerter's cooldown per person and camera keeps the new track from raising a second alert).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from argus.errors import ConfigError, InputError
from argus.faces.embedder import EMBEDDING_DIM
from argus.faces.pipeline import BatchEmotions, FrameEmotions, FrameFaces, Region
from argus.faces.tta import MAX_VIEWS
from argus.imaging import decode_jpeg, encode_jpeg
from argus.metrics import StageMetrics
from argus.motion import DetectMode, detection_regions, should_detect
from argus.runtime.resources import Resources
from argus.runtime.runner import Item, Output, Reject, StageRunner
from argus.schemas import TOPIC_FACES, EndedTrackV2, FacesV3, FaceV3, FrameV2, Quality, embedding_bytes
from argus.topology import INPUT_TOPICS, OUTPUT_TOPICS
from argus.tracking import FrameResult, Track, Tracker, TrackerConfig, face_score, should_embed


class InferenceProcessor:
    stage = "inference"
    input_topic = INPUT_TOPICS["inference"]
    input_type = FrameV2
    output_topics: tuple[str, ...] = OUTPUT_TOPICS["inference"]

    def __init__(self, resources: Resources, metrics: StageMetrics) -> None:
        s = resources.settings
        self.pipeline = resources.pipeline
        self.crop_quality = 90
        self.track_config = TrackerConfig(max_age_s=s.track_max_age_s, max_embeddings=s.track_max_embeddings)
        self.tracker = Tracker(self.track_config)
        self.faces_total = metrics.counter("faces_total", "Faces found, by camera.", ("camera",))
        self.frames_total = metrics.counter(
            "frames_total", "Frames analysed, by camera and outcome (faces, no_face).", ("camera", "outcome"))
        self.embedded_total = metrics.counter(
            "faces_embedded_total", "Faces the tracker chose for the embedder (the rest are tracked, not named).")
        self.tracks_ended = metrics.counter("tracks_ended_total", "Tracks ended, by reason.", ("reason",))
        self.tracks_active = metrics.gauge("tracks_active", "Face tracks open in this replica (all cameras).")
        self.model_seconds = metrics.histogram("batch_model_seconds", "Model time per micro-batch.")
        self.detect_regions = s.detect_regions
        self.detect_interval = s.detect_interval
        self.detect_max_gap_s = s.track_max_age_s / 2  # a track is hit again well before max_age_s ends it
        self.detect_state: dict[str, _DetectState] = {}
        self.detections_skipped = metrics.counter(
            "detections_skipped_total", "Published frames the detector did not run on, by reason (interval: "
            "between two detections at ARGUS_DETECT_INTERVAL; the camera's tracks carry them).", ("reason",))
        self.detections_skipped.labels("interval")  # the series exists from the start: 0, not no data
        self.detector_images = metrics.counter(
            "detector_images_total", "Images the detector ran on, by kind: full (a whole frame: keyframes, gating "
            "off) or crop (a model-sized crop around motion and open tracks).", ("kind",))
        self.detector_pixels = metrics.counter(
            "detector_pixels_total", "Pixels the detector ran on, by kind (full, crop): its load.", ("kind",))
        self.emotion_tta, self.emotion_tta_views = s.emotion_tta, s.emotion_tta_views
        self.emotion_rules = s.emotion_rules
        if self.emotion_tta != "off" and self.emotion_tta_views > MAX_VIEWS:
            raise ConfigError(f"emotion_tta_views: expected at most {MAX_VIEWS} (the views argus.faces.tta defines), "
                              f"got {self.emotion_tta_views}")
        self.emotion_faces = metrics.counter(
            "emotion_faces_total", "Faces given an emotion, by mode (plain: one view; tta: augmented views averaged).",
            ("mode",))
        self.emotion_views = metrics.counter(
            "emotion_views_total", "Emotion-model rows (views) computed, by mode: the cost of TTA.", ("mode",))
        self.mesh_seconds = metrics.histogram("mesh_seconds", "FaceMesh + ECRL features time per micro-batch.")
        self.emotion_mesh_seconds = metrics.histogram(
            "emotion_mesh_seconds", "Emotion (with TTA) + FaceMesh + ECRL time per micro-batch.")
        self.ecrl_failures = metrics.counter(
            "ecrl_failures_total", "Embedded faces whose mesh gave no ECRL features (published with ecrl=()), by "
            "reason: mesh (box refused), no_face (mesh presence < 0.5), features (degenerate geometry).", ("reason",))

    def process(self, items: Sequence[Item[FrameV2]]) -> list[Output | Reject]:
        out: list[Output | Reject] = []
        good: list[Item[FrameV2]] = []
        modes: list[DetectMode] = []
        images: list[np.ndarray] = []
        for it in items:
            m = it.message
            mode = self._due(m)
            if mode == "skip":
                self.detections_skipped.labels("interval").inc()
                continue
            try:
                img = decode_jpeg(m.jpeg, where=f"camera {m.camera_id!r} frame {m.seq}")
            except InputError as e:
                out.append(Reject(it, "corrupt_frame", e))
                continue
            good.append(it)
            images.append(img)
            modes.append(mode)
        if not images:
            return out
        t0 = time.perf_counter()
        regions = [self._regions(it.message, img, young_only=mode == "young_tracks")
                   for it, img, mode in zip(good, images, modes, strict=True)]
        located = self.pipeline.locate(images, regions=regions)
        pending: dict[str, _Budget] = {}  # embeddings chosen earlier in this batch, not yet recorded by the tracker
        plans = [self._track(it.message, faces, pending) for it, faces in zip(good, located, strict=True)]
        picked = [(p, j) for p in plans for j in p.embed]
        embeddings = (self.pipeline.embedder.embed(np.stack([p.faces.crops[j] for p, j in picked]))
                      if picked else np.zeros((0, EMBEDDING_DIM), np.float32))
        emo = self.pipeline.read_emotions(
            images, located, embedded=[p.embed for p in plans], emotion_tta=self.emotion_tta,
            emotion_tta_views=self.emotion_tta_views if self.emotion_tta != "off" else 1,
            emotion_rules=self.emotion_rules)
        self.model_seconds.observe(time.perf_counter() - t0)
        self._count_emotions(emo)
        for (p, j), emb in zip(picked, embeddings, strict=True):
            p.embedding[j] = emb
            self.tracker.record_embedding(p.message.camera_id, p.result.assignments[j].track_id, embedding=emb,
                                          score=p.scores[j])
        self.embedded_total.inc(len(picked))
        now = time.time()
        for p, fe in zip(plans, emo.frames, strict=True):
            out.extend(self._message(p, fe, now))
        self.tracks_active.set(sum(len(c.tracks) for c in self.tracker.cameras.values()))
        return out

    def _due(self, m: FrameV2) -> DetectMode:
        """Whether this frame is detected (argus.motion.should_detect); a redelivered frame gets its first answer."""
        st = self.detect_state.setdefault(m.camera_id, _DetectState())
        known = st.decided.get(m.seq)
        if known is not None:
            return known
        cam = self.tracker.cameras.get(m.camera_id)
        young = cam is not None and any(self._young(t) for t in cam.tracks.values())
        due = should_detect(keyframe=m.keyframe, seq=m.seq, ts=m.ts_capture, last_seq=st.last_seq,
                            last_ts=st.last_ts, interval=self.detect_interval, max_gap_s=self.detect_max_gap_s,
                            young_track=young)
        st.decided[m.seq] = due
        while len(st.decided) > _DECIDED_KEPT:
            st.decided.popitem(last=False)
        if due == "detect":  # a corrupt frame counts too: the next one is due by seq or by max_gap_s all the same
            st.last_seq, st.last_ts = m.seq, m.ts_capture
        return due

    def _young(self, t: Track) -> bool:
        """A track with one hit: no velocity yet to carry it across a gap, and its first embeddings still to come."""
        return t.hits < _YOUNG_HITS

    def _regions(self, m: FrameV2, img: np.ndarray, *, young_only: bool = False) -> tuple[Region, ...] | None:
        """Where to detect on this frame (argus.motion.detection_regions), counted as detector load; ``young_only``:
        around the camera's young tracks alone (a frame between two detections at the interval)."""
        h, w = img.shape[:2]
        regions = None
        if (self.detect_regions and not m.keyframe) or young_only:
            cam = self.tracker.cameras.get(m.camera_id)
            tracks = [t for t in cam.tracks.values() if not young_only or self._young(t)] if cam else []
            tracked = [tuple(float(v) for v in t.predict(m.ts_capture)) for t in tracks]
            regions = detection_regions(keyframe=False, motion=() if young_only else m.motion, tracked=tracked,
                                        frame_shape=(h, w))
        if regions is None:
            self.detector_images.labels("full").inc()
            self.detector_pixels.labels("full").inc(h * w)
        elif regions:
            self.detector_images.labels("crop").inc(len(regions))
            self.detector_pixels.labels("crop").inc(sum((r[2] - r[0]) * (r[3] - r[1]) for r in regions))
        return regions

    def _track(self, m: FrameV2, faces: FrameFaces, pending: dict[str, _Budget]) -> _FramePlan:
        """Associate the frame's faces with the camera's tracks and pick the ones worth embedding."""
        d = faces.detections
        result = self.tracker.update(m.camera_id, seq=m.seq, ts=m.ts_capture, width=m.width, height=m.height,
                                     detections=d)
        scores = [face_score(quality=faces.quality[j], landmarks=d.landmarks[j], det_score=float(d.scores[j]))
                  for j in range(len(d))]
        embed = []
        for j, a in enumerate(result.assignments):
            budget = pending.setdefault(a.track_id, _Budget(embedded=a.embedded,
                                                            best_embedded_score=a.best_embedded_score))
            if should_embed(budget, scores[j], self.track_config):
                embed.append(j)
                budget.embedded += 1
                budget.best_embedded_score = max(budget.best_embedded_score, scores[j])
        for ended in result.ended:
            self.tracks_ended.labels(ended.reason).inc()
        return _FramePlan(message=m, faces=faces, result=result, scores=scores, embed=embed, embedding={})

    def _count_emotions(self, emo: BatchEmotions) -> None:
        self.mesh_seconds.observe(emo.mesh_seconds)
        self.emotion_mesh_seconds.observe(emo.emotion_seconds + emo.mesh_seconds)
        views = [v for f in emo.frames for v in f.views]
        for mode, chosen in (("plain", [v for v in views if v == 1]), ("tta", [v for v in views if v > 1])):
            if chosen:
                self.emotion_faces.labels(mode).inc(len(chosen))
                self.emotion_views.labels(mode).inc(sum(chosen))
        for f in emo.frames:
            for reason in f.ecrl_failed:
                if reason is not None:
                    self.ecrl_failures.labels(reason).inc()

    def _message(self, p: _FramePlan, e: FrameEmotions, now: float) -> list[Output | Reject]:
        m, d = p.message, p.faces.detections
        self.frames_total.labels(m.camera_id, "faces" if len(d) else "no_face").inc()
        if not len(d) and not p.result.ended:
            return []
        self.faces_total.labels(m.camera_id).inc(len(d))
        wire = []
        for j, a in enumerate(p.result.assignments):
            emb = p.embedding.get(j)
            wire.append(FaceV3(
                index=j, track_id=a.track_id, track_state=a.state, face_score=min(1.0, max(0.0, p.scores[j])),
                box=(float(d.boxes[j, 0]), float(d.boxes[j, 1]), float(d.boxes[j, 2]), float(d.boxes[j, 3])),
                landmarks=tuple(float(v) for v in d.landmarks[j].reshape(-1)),
                det_score=min(1.0, max(0.0, float(d.scores[j]))),
                quality=Quality(size=float(p.faces.quality[j].size), blur=float(p.faces.quality[j].blur)),
                embedded=emb is not None, embedding=embedding_bytes(emb) if emb is not None else b"",
                emotion=tuple(float(v) for v in e.probs[j]),
                crop_jpeg=encode_jpeg(p.faces.crops[j], quality=self.crop_quality) if emb is not None else b"",
                ecrl=e.ecrl[j], emotion_views=e.views[j],
            ))
        ended = tuple(EndedTrackV2(track_id=t.track_id, reason=t.reason, first_seq=t.first_seq, last_seq=t.last_seq,
                                   hits=t.hits) for t in p.result.ended)
        return [Output(TOPIC_FACES, FacesV3(
            camera_id=m.camera_id, seq=m.seq, ts_capture=m.ts_capture, ts_infer=now, frame_width=m.width,
            frame_height=m.height, detector=self.pipeline.detector_name, embedder=self.pipeline.embedder_name,
            faces=tuple(wire), ended=ended,
        ))]

    def close(self) -> None:
        pass


_YOUNG_HITS = 2  # hits that give a track a velocity (and, with initial_embeddings 2, its first two embeddings)
_DECIDED_KEPT = 256  # per camera: recent frames' detect decisions, replayed to a redelivered frame


@dataclass(kw_only=True)
class _DetectState:
    """A camera's detection interval: its last detected frame, its recent decisions (argus.motion.should_detect)."""

    last_seq: int | None = None
    last_ts: float | None = None
    decided: OrderedDict[int, DetectMode] = field(default_factory=OrderedDict)


@dataclass(kw_only=True)
class _Budget:
    """A track's embedding budget as this batch spends it (argus.tracking.EmbedHistory)."""

    embedded: int
    best_embedded_score: float


@dataclass(kw_only=True)
class _FramePlan:
    """One frame between tracking and publishing: its faces, their tracks and scores, which get embedded."""

    message: FrameV2
    faces: FrameFaces
    result: FrameResult
    scores: list[float]
    embed: list[int]
    embedding: dict[int, np.ndarray]


def build(resources: Resources) -> StageRunner[FrameV2]:
    metrics = StageMetrics("inference", registry=resources.registry)
    return StageRunner.for_stage(InferenceProcessor(resources, metrics), resources, metrics)
