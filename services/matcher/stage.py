"""Matcher stage: tracked faces in, one decision per track out (revised when better faces change it).

The embedded faces of a micro-batch go to the gallery in one batched FAISS search; a face counts only when it is
usable (size and sharpness floors: :func:`argus.decisions.face_usable`). Each track accumulates its faces'
candidates (:mod:`argus.trackbook`) and is decided again after each (:func:`argus.decisions.decide_track`): a
listed person is named only with enough agreeing, large-enough faces, a track score at the watch-list's (and the
camera's) threshold, and a lead over every other identity — cohort persons (watch-list ``cohort``: unrelated people
who are never named) included. Only a change of verdict is published. Every decision carries the track's evidence
(faces seen, embedded and supporting, score history, best crop, top-k candidates). Gallery changes made by
``argus gallery enroll/remove`` are picked up without a restart.

What the gallery says beyond who is enrolled is applied here too: a person whose ``expires_at`` has passed (wall
clock, checked at every batch) is never named — they stay searchable, so a track of them ends ``not_listed`` rather
than being named for somebody else; a watch-list's spec threshold overrides the configured ones
(:func:`argus.decisions.thresholds_in_force`); and a face at least as close to a person's negative evidence as to
the person does not count for them (:func:`argus.decisions.discount_negatives`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence

import numpy as np

from argus.decisions import (
    IdentifyRule,
    QualityFloor,
    Thresholds,
    TrackDecision,
    TrackFace,
    discount_negatives,
    face_usable,
)
from argus.ecrl import decide as decide_emotion
from argus.errors import InputError, SchemaError
from argus.faces.embedder import EMBEDDING_DIM
from argus.faces.types import emotion_label
from argus.gallery.base import COHORT_WATCHLIST, Candidate, Person
from argus.ids import event_id
from argus.metrics import StageMetrics
from argus.runtime.resources import Resources
from argus.runtime.runner import Item, Output, Reject, StageRunner
from argus.schemas import (
    TOPIC_MATCHES,
    CandidateV1,
    EmotionChangeV3,
    FacesV3,
    FaceV3,
    MatchesV3,
    TrackMatchV3,
    embedding_from_bytes,
)
from argus.topology import INPUT_TOPICS, OUTPUT_TOPICS
from argus.trackbook import TrackBook, TrackState

log = logging.getLogger(__name__)


class MatcherProcessor:
    stage = "matcher"
    input_topic = INPUT_TOPICS["matcher"]
    input_type = FacesV3
    output_topics: tuple[str, ...] = OUTPUT_TOPICS["matcher"]

    def __init__(self, resources: Resources, metrics: StageMetrics) -> None:
        s = resources.settings
        self.gallery = resources.gallery
        self._configured = s.thresholds()  # the environment's chain; the gallery's specs go on top (_sync)
        self.thresholds: Thresholds = self._configured
        self.top_k = s.top_k
        self.floor = QualityFloor(min_size=s.min_quality_size, min_blur=s.min_quality_blur)
        self.book = TrackBook(rule=IdentifyRule(min_size=s.identify_min_size, min_faces=s.identify_min_faces,
                                                min_margin=s.identify_min_margin),
                              thresholds=self.thresholds, camera_thresholds=s.camera_thresholds,
                              emotion_rules=s.emotion_rules)
        self.faces = metrics.counter(
            "faces_total", "Faces seen, by outcome (embedded, not_embedded, low_quality).", ("outcome",))
        self.decisions = metrics.counter(
            "track_decisions_total", "Track decisions after each embedded face, by outcome (matched, "
            "below_threshold, ambiguous, not_listed, too_few_faces, no_usable_face).", ("outcome",))
        self.matches = metrics.counter("matches_total", "Track verdicts published (a match or its revision), by "
                                       "watch-list.", ("watchlist",))
        self.emotion_paths = metrics.counter(
            "emotion_paths_total", "Track emotion decisions after each face, by the path that decided them (cnn, "
            "cnn+rules, cnn_kept = rules disagreed, rules; argus.ecrl.Path).", ("path",))
        self.tracks = metrics.gauge("tracks_open", "Face tracks the matcher is deciding on.")
        self.search_seconds = metrics.histogram("search_seconds", "FAISS search time per micro-batch.")
        self.gallery_size = metrics.gauge("gallery_persons", "Persons in the watch-list gallery.")
        self.gallery_version = metrics.gauge("gallery_version", "Gallery version in use (bumps on every change).")
        self._last_reload = 0.0
        self._synced = -1  # gallery version the caches below were built from
        self._nameable: list[Person] = []  # every non-cohort person, expired or not
        self._listed: dict[str, str] = {}
        self._listed_at = math.inf  # wall-clock time _listed was computed at
        self._listed_until = -math.inf  # wall-clock time until which _listed is right (the next expiry)
        self._negatives: dict[str, np.ndarray] = {}

    def _sync(self) -> None:
        """Rebuild what is derived from the gallery when its version moved: thresholds, listable persons, negatives."""
        v = self.gallery.version
        if v == self._synced:
            return
        self._synced = v
        self.thresholds = self._configured.with_overrides({w.name: w.threshold for w in self.gallery.watchlists()})
        self.book.thresholds = self.thresholds
        self._nameable = [p for p in self.gallery.persons() if p.watchlist != COHORT_WATCHLIST]
        self._listed_until = -math.inf
        self._negatives = {}

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._last_reload > 1.0:
            self._last_reload = now
            if self.gallery.reload_if_changed():
                log.info("gallery reloaded: version %d, %d persons", self.gallery.version, len(self.gallery))
        self.gallery_size.set(len(self.gallery))
        self.gallery_version.set(self.gallery.version)

    def listed(self, now: float | None = None) -> dict[str, str]:
        """person id → watch-list for every person who may be named at wall-clock ``now`` (default: now): not a
        cohort person (only ever a runner-up) and not expired. Recomputed when the gallery changes and whenever
        ``now`` reaches the next expiry, so an authorization that ends mid-run ends at the right batch."""
        self._sync()
        now = time.time() if now is None else now
        if now >= self._listed_until or now < self._listed_at:  # the next expiry came, or the clock stepped back
            self._listed_at = now
            self._listed = {p.person_id: p.watchlist for p in self._nameable if p.active(now)}
            self._listed_until = min((p.expires_at for p in self._nameable
                                      if p.expires_at is not None and p.expires_at > now), default=math.inf)
        return self._listed

    def _negatives_of(self, person_id: str) -> np.ndarray:
        rows = self._negatives.get(person_id)
        if rows is None:
            rows = self._negatives[person_id] = self.gallery.negatives(person_id)
        return rows

    def _discounted(self, query: np.ndarray, cands: list[Candidate]) -> list[Candidate]:
        """``cands`` less the persons whose negative evidence this face is at least as close to as to them."""
        neg_scores = {}
        for c in cands:
            rows = self._negatives_of(c.person_id)
            if rows.shape[0]:
                neg_scores[c.person_id] = float((rows @ query).max())
        if not neg_scores:
            return cands
        kept = {p for p, _ in discount_negatives([(c.person_id, float(c.score)) for c in cands], neg_scores)}
        return [c for c in cands if c.person_id in kept]

    def process(self, items: Sequence[Item[FacesV3]]) -> list[Output | Reject]:
        self._refresh()
        todo: list[tuple[Item[FacesV3], FaceV3, TrackState]] = []
        for it in items:
            m = it.message
            self.book.end(m.camera_id, [t.track_id for t in m.ended])
            for f in m.faces:
                st = self.book.seen(m.camera_id, f.track_id, seq=m.seq, face_index=f.index, ts=m.ts_capture)
                if st is None:
                    continue
                st.emotion.add(seq=m.seq, ts=m.ts_capture, probs=np.asarray(f.emotion), weight=f.face_score,
                               features=f.ecrl_features())
                self.emotion_paths.labels(st.emotion.path.name).inc()
                if not f.embedded:
                    self.faces.labels("not_embedded").inc()
                elif not face_usable(size=f.quality.size, blur=f.quality.blur, floor=self.floor):
                    self.faces.labels("low_quality").inc()
                else:
                    self.faces.labels("embedded").inc()
                    todo.append((it, f, st))
        self.tracks.set(len(self.book))
        if not todo or len(self.gallery) == 0:
            return []
        try:
            q = np.stack([embedding_from_bytes(f.embedding, EMBEDDING_DIM) for _, f, _ in todo])
        except SchemaError as e:  # a wrong-size embedding is bad input; the runner isolates the message
            raise InputError(f"faces message carries a malformed embedding: {e}") from e
        t0 = time.perf_counter()
        results = self.gallery.search(q, self.top_k)
        self.search_seconds.observe(time.perf_counter() - t0)
        listed = self.listed()
        by_frame: dict[int, tuple[Item[FacesV3], list[TrackMatchV3]]] = {}
        for row, ((it, f, st), found) in enumerate(zip(todo, results, strict=True)):
            cands = self._discounted(q[row], found)
            self.book.add_face(st, TrackFace(size=f.quality.size, weight=f.face_score,
                                             candidates=tuple((c.person_id, float(c.score)) for c in cands)),
                               evidence=(f, cands))
            decision, before = self.book.decide(st, listed)
            self.decisions.labels(decision.outcome.value).inc()
            if before is None:
                continue
            match = self._wire(it.message, f, st, decision, withdrawn=before if not decision.matched else None)
            if match is not None:
                self.matches.labels(match.watchlist).inc()
                by_frame.setdefault(id(it), (it, []))[1].append(match)
        now = time.time()
        return [Output(TOPIC_MATCHES, MatchesV3(
            camera_id=it.message.camera_id, seq=it.message.seq, ts_capture=it.message.ts_capture, ts_match=now,
            gallery_version=self.gallery.version, matches=tuple(matches))) for it, matches in by_frame.values()]

    def _wire(self, m: FacesV3, face: FaceV3, st: TrackState, decision: TrackDecision,
              withdrawn: str | None) -> TrackMatchV3 | None:
        """The published decision; for a withdrawal it names the person no longer named."""
        person_id = withdrawn if withdrawn is not None else decision.person_id
        person = self.gallery.get(person_id) if person_id else None
        if person is None:  # removed from the gallery in between: nothing to name or withdraw
            return None
        best: FaceV3 = st.best_evidence[0]
        cands: list[Candidate] = st.best_evidence[1]
        history = tuple(float(dict(tf.candidates).get(person.person_id, -1.0)) for tf in st.faces)
        return TrackMatchV3(
            track_id=st.track_id, revision=st.revision, matched=decision.matched, outcome=decision.outcome.value,
            face_index=face.index, event_id=event_id(m.camera_id, m.seq, face.index), box=best.box,
            det_score=best.det_score, quality=best.quality,
            emotion=tuple(float(v) for v in st.emotion.probs) if st.emotion.probs is not None else best.emotion,
            emotion_label=st.emotion.label if st.emotion.verdict is not None else emotion_label(best.emotion),
            emotion_path=(st.emotion.path if st.emotion.verdict is not None
                          else decide_emotion(emotion_label(best.emotion), None).path).value,
            emotion_timeline=tuple(EmotionChangeV3(seq=c.seq, ts=c.ts, label=c.label, confidence=c.confidence,
                                                   path=c.path.value) for c in st.emotion.timeline),
            crop_jpeg=best.crop_jpeg, person_id=person.person_id,
            display_name=person.display_name, watchlist=person.watchlist, score=float(decision.score),
            threshold=float(decision.threshold if decision.threshold is not None
                            else self.thresholds.for_watchlist(person.watchlist)),
            margin=float(decision.margin),
            candidates=tuple(CandidateV1(person_id=c.person_id, display_name=c.display_name, watchlist=c.watchlist,
                                         score=float(c.score)) for c in cands),
            faces_seen=st.faces_seen, faces_embedded=len(st.faces), faces_supporting=decision.supporting,
            score_history=history, first_seq=st.first_seq, ts_first=st.ts_first,
        )

    def close(self) -> None:
        pass


def build(resources: Resources) -> StageRunner[FacesV3]:
    metrics = StageMetrics("matcher", registry=resources.registry)
    return StageRunner.for_stage(MatcherProcessor(resources, metrics), resources, metrics)
