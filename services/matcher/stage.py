"""Matcher stage: faces in, watch-list matches out.

All faces of a micro-batch go to the gallery in one batched FAISS search. A face becomes a match only when it is
usable (size and sharpness at or above the configured floors: :func:`argus.decisions.face_usable`) AND its best
candidate's cosine score reaches the threshold of that candidate's watch-list (``ARGUS_WATCHLIST_THRESHOLDS``, else
``ARGUS_MATCH_THRESHOLD``, else the embedder's measured default: :func:`argus.decisions.decide_match`) — a blurred
20-pixel face should never put a person on an operator's screen.
Every match carries its top-k candidates and the margin to the runner-up as review evidence. Gallery changes made by
``argus gallery enroll/remove`` are picked up without a restart.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np

from argus.decisions import QualityFloor, Thresholds, decide_match, face_usable
from argus.errors import InputError, SchemaError
from argus.faces.embedder import DEFAULT_MATCH_THRESHOLD, EMBEDDING_DIM
from argus.faces.types import emotion_label
from argus.ids import event_id
from argus.metrics import StageMetrics
from argus.runtime.resources import Resources
from argus.runtime.runner import Item, Output, Reject, StageRunner
from argus.schemas import (
    TOPIC_MATCHES,
    CandidateV1,
    FaceMatchV1,
    FacesV1,
    FaceV1,
    MatchesV1,
    embedding_from_bytes,
)
from argus.topology import INPUT_TOPICS, OUTPUT_TOPICS

log = logging.getLogger(__name__)


class MatcherProcessor:
    stage = "matcher"
    input_topic = INPUT_TOPICS["matcher"]
    input_type = FacesV1
    output_topics: tuple[str, ...] = OUTPUT_TOPICS["matcher"]

    def __init__(self, resources: Resources, metrics: StageMetrics) -> None:
        s = resources.settings
        self.gallery = resources.gallery
        self.thresholds = Thresholds.from_settings(match_threshold=s.match_threshold,
                                                   watchlist_thresholds=s.watchlist_thresholds,
                                                   model_default=DEFAULT_MATCH_THRESHOLD)
        self.top_k = s.top_k
        self.floor = QualityFloor(min_size=s.min_quality_size, min_blur=s.min_quality_blur)
        self.faces = metrics.counter(
            "faces_total", "Faces seen, by outcome (match, no_match, low_quality).", ("outcome",))
        self.matches = metrics.counter("matches_total", "Matches by watch-list.", ("watchlist",))
        self.search_seconds = metrics.histogram("search_seconds", "FAISS search time per micro-batch.")
        self.gallery_size = metrics.gauge("gallery_persons", "Persons in the watch-list gallery.")
        self.gallery_version = metrics.gauge("gallery_version", "Gallery version in use (bumps on every change).")
        self._last_reload = 0.0

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._last_reload > 1.0:
            self._last_reload = now
            if self.gallery.reload_if_changed():
                log.info("gallery reloaded: version %d, %d persons", self.gallery.version, len(self.gallery))
        self.gallery_size.set(len(self.gallery))
        self.gallery_version.set(self.gallery.version)

    def process(self, items: Sequence[Item[FacesV1]]) -> list[Output | Reject]:
        self._refresh()
        usable: list[tuple[Item[FacesV1], FaceV1]] = []
        out: list[Output | Reject] = []
        for it in items:
            for f in it.message.faces:
                if not face_usable(size=f.quality.size, blur=f.quality.blur, floor=self.floor):
                    self.faces.labels("low_quality").inc()
                    continue
                usable.append((it, f))
        if not usable or len(self.gallery) == 0:
            self.faces.labels("no_match").inc(len(usable))
            return out
        try:
            q = np.stack([embedding_from_bytes(f.embedding, EMBEDDING_DIM) for _, f in usable])
        except SchemaError as e:  # a wrong-size embedding is bad input; the runner isolates the message
            raise InputError(f"faces message carries a malformed embedding: {e}") from e
        t0 = time.perf_counter()
        results = self.gallery.search(q, self.top_k)
        self.search_seconds.observe(time.perf_counter() - t0)
        version = self.gallery.version
        by_frame: dict[int, tuple[Item[FacesV1], list[FaceMatchV1]]] = {}
        for (it, f), cands in zip(usable, results, strict=True):
            verdict = decide_match(cands, self.thresholds)
            if verdict is None:
                self.faces.labels("no_match").inc()
                continue
            best = cands[verdict.best_index]
            m = it.message
            self.faces.labels("match").inc()
            self.matches.labels(best.watchlist).inc()
            by_frame.setdefault(id(it), (it, []))[1].append(FaceMatchV1(
                face_index=f.index, event_id=event_id(m.camera_id, m.seq, f.index), box=f.box,
                det_score=f.det_score, quality=f.quality, emotion=f.emotion,
                emotion_label=emotion_label(f.emotion), crop_jpeg=f.crop_jpeg,
                person_id=best.person_id, display_name=best.display_name, watchlist=best.watchlist,
                score=float(best.score), threshold=verdict.threshold, margin=verdict.margin,
                candidates=tuple(CandidateV1(person_id=c.person_id, display_name=c.display_name,
                                             watchlist=c.watchlist, score=float(c.score)) for c in cands),
            ))
        now = time.time()
        for it, matches in by_frame.values():
            m = it.message
            out.append(Output(TOPIC_MATCHES, MatchesV1(
                camera_id=m.camera_id, seq=m.seq, ts_capture=m.ts_capture, ts_match=now,
                gallery_version=version, matches=tuple(matches))))
        return out

    def close(self) -> None:
        pass


def build(resources: Resources) -> StageRunner[FacesV1]:
    metrics = StageMetrics("matcher", registry=resources.registry)
    return StageRunner.for_stage(MatcherProcessor(resources, metrics), resources, metrics)
