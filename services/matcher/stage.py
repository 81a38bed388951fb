"""Matcher stage: faces in, watch-list matches out.

All faces of a micro-batch go to the gallery in one batched FAISS search. A face becomes a match only when its
best candidate's cosine score reaches the threshold of that candidate's watch-list (``ARGUS_WATCHLIST_THRESHOLDS``,
else ``ARGUS_MATCH_THRESHOLD``, else the embedder's measured default) AND the face is usable (size and sharpness
above the configured floors) — a blurred 20-pixel face should never put a person on an operator's screen.
Every match carries its top-k candidates and the margin to the runner-up as review evidence. Gallery changes made by
``argus gallery enroll/remove`` are picked up without a restart.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np

from argus.faces.embedder import DEFAULT_MATCH_THRESHOLD, EMBEDDING_DIM
from argus.faces.types import EMOTIONS
from argus.metrics import StageMetrics
from argus.runtime.http import Health
from argus.runtime.resources import Resources
from argus.runtime.runner import Item, Output, Reject, StageRunner
from argus.schemas import (
    TOPIC_FACES,
    TOPIC_MATCHES,
    CandidateV1,
    FaceMatchV1,
    FacesV1,
    FaceV1,
    MatchesV1,
    embedding_from_bytes,
)

log = logging.getLogger(__name__)



def event_id(camera_id: str, seq: int, face_index: int) -> str:
    """Deterministic, so a redelivered face upserts the same event instead of adding one."""
    return f"{camera_id}:{seq}:{face_index}"


class MatcherProcessor:
    stage = "matcher"
    input_topic = TOPIC_FACES
    input_type = FacesV1
    output_topics: tuple[str, ...] = (TOPIC_MATCHES,)

    def __init__(self, resources: Resources, metrics: StageMetrics) -> None:
        s = resources.settings
        self.gallery = resources.gallery
        self.default_threshold = s.match_threshold or DEFAULT_MATCH_THRESHOLD
        self.thresholds = dict(s.watchlist_thresholds)
        self.top_k = s.top_k
        self.min_size = s.min_quality_size
        self.min_blur = s.min_quality_blur
        self.faces = metrics.counter(
            "faces_total", "Faces seen, by outcome (match, no_match, low_quality).", ("outcome",))
        self.matches = metrics.counter("matches_total", "Matches by watch-list.", ("watchlist",))
        self.search_seconds = metrics.histogram("search_seconds", "FAISS search time per micro-batch.")
        self.gallery_size = metrics.gauge("gallery_persons", "Persons in the watch-list gallery.")
        self.gallery_version = metrics.gauge("gallery_version", "Gallery version in use (bumps on every change).")
        self._last_reload = 0.0

    def threshold_for(self, watchlist: str) -> float:
        return self.thresholds.get(watchlist, self.default_threshold)

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
                if f.quality.size < self.min_size or f.quality.blur < self.min_blur:
                    self.faces.labels("low_quality").inc()
                    continue
                usable.append((it, f))
        if not usable or len(self.gallery) == 0:
            self.faces.labels("no_match").inc(len(usable))
            return out
        try:
            q = np.stack([embedding_from_bytes(f.embedding, EMBEDDING_DIM) for _, f in usable])
        except Exception as e:  # a wrong-size embedding is bad input; isolate it via the runner
            from argus.errors import InputError

            raise InputError(f"faces message carries a malformed embedding: {e}") from e
        t0 = time.perf_counter()
        results = self.gallery.search(q, self.top_k)
        self.search_seconds.observe(time.perf_counter() - t0)
        version = self.gallery.version
        by_frame: dict[int, list[FaceMatchV1]] = {}
        frame_item: dict[int, Item[FacesV1]] = {}
        for (it, f), cands in zip(usable, results, strict=True):
            if not cands or cands[0].score < self.threshold_for(cands[0].watchlist):
                self.faces.labels("no_match").inc()
                continue
            best = cands[0]
            runner_up = cands[1].score if len(cands) > 1 else -1.0
            m = it.message
            self.faces.labels("match").inc()
            self.matches.labels(best.watchlist).inc()
            by_frame.setdefault(id(it), []).append(FaceMatchV1(
                face_index=f.index, event_id=event_id(m.camera_id, m.seq, f.index), box=f.box,
                det_score=f.det_score, quality=f.quality, emotion=f.emotion,
                emotion_label=EMOTIONS[int(np.argmax(f.emotion))], crop_jpeg=f.crop_jpeg,
                person_id=best.person_id, display_name=best.display_name, watchlist=best.watchlist,
                score=float(best.score), threshold=self.threshold_for(best.watchlist),
                margin=float(best.score - runner_up),
                candidates=tuple(CandidateV1(person_id=c.person_id, display_name=c.display_name,
                                             watchlist=c.watchlist, score=float(c.score)) for c in cands),
            ))
            frame_item[id(it)] = it
        now = time.time()
        for key, matches in by_frame.items():
            m = frame_item[key].message
            out.append(Output(TOPIC_MATCHES, MatchesV1(
                camera_id=m.camera_id, seq=m.seq, ts_capture=m.ts_capture, ts_match=now,
                gallery_version=version, matches=tuple(matches))))
        return out

    def close(self) -> None:
        pass


def build(resources: Resources) -> StageRunner[FacesV1]:
    s = resources.settings
    metrics = StageMetrics("matcher", registry=resources.registry)
    return StageRunner(
        processor=MatcherProcessor(resources, metrics), bus=resources.bus, metrics=metrics, health=Health(),
        batch_max=max(32, s.batch_max), batch_wait_s=s.batch_wait_ms / 1000,
    )
