"""What the matcher remembers of each face track between frames, and when a track's decision is worth publishing.

A track accumulates the gallery candidates of its embedded faces; after each one the track is decided again
(:func:`argus.decisions.decide_track`). Only a *change of verdict* is published — the first match, a different
person, or a withdrawal — so the alerter sees one decision per visit plus a revision when better faces change it,
never a stream of near-identical sightings.

State is keyed by (camera, track id). Topics are keyed by camera, so every face of a track reaches the same matcher
replica; when the camera's partition moves, the new owner starts the track afresh (its inference replica starts a
new track id too). Memory is bounded: tracks end on the inference stage's "ended" notice, and a track not heard of
for ``idle_s`` of capture time (a lost notice) or beyond ``max_tracks`` per camera is dropped, oldest first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from argus.decisions import IdentifyRule, Thresholds, TrackDecision, TrackFace, decide_track
from argus.emotion_track import EmotionTrack
from argus.errors import ConfigError


@dataclass(kw_only=True)
class TrackState:
    """One track as the matcher knows it."""

    camera_id: str
    track_id: str
    first_seq: int
    ts_first: float
    ts_last: float
    faces_seen: int = 0
    faces: list[TrackFace] = field(default_factory=list)
    best_weight: float = -1.0  # face_score of the best embedded face so far (its evidence is the alert's crop)
    best_evidence: Any = None  # whatever the caller keeps for that face (the matcher: the wire face, its candidates)
    published: str | None = None  # the person the last published decision named (None: nobody yet / withdrawn)
    revision: int = 0
    face_keys: set[tuple[int, int]] = field(default_factory=set)  # (seq, face index) already counted
    emotion: EmotionTrack = field(default_factory=EmotionTrack)  # every face's emotion, smoothed along the track


def verdict_changed(published: str | None, decision: TrackDecision) -> bool:
    """Publish when the person the track names changes: first match, another person, or nobody any more."""
    named = decision.person_id if decision.matched else None
    return named != published


class TrackBook:
    def __init__(self, *, rule: IdentifyRule, thresholds: Thresholds, camera_thresholds: Mapping[str, float],
                 max_tracks: int = 512, idle_s: float = 300.0, emotion_rules: bool = True) -> None:
        if max_tracks < 1 or idle_s <= 0:
            raise ConfigError(f"track book: expected max_tracks >= 1 and idle_s > 0, got {max_tracks}, {idle_s}")
        self.rule = rule
        self.thresholds = thresholds
        self.camera_thresholds = dict(camera_thresholds)
        self.max_tracks = max_tracks
        self.idle_s = idle_s
        self.emotion_rules = emotion_rules  # ARGUS_EMOTION_RULES: each track's emotion through the ECRL decision
        self._cams: dict[str, OrderedDict[str, TrackState]] = {}

    def __len__(self) -> int:
        return sum(len(c) for c in self._cams.values())

    def seen(self, camera_id: str, track_id: str, *, seq: int, face_index: int, ts: float) -> TrackState | None:
        """The track's state, created on its first face; every detected face counts as seen. None when this very
        face was counted already (a batch retried or isolated by the runner): it must not vote twice."""
        cam = self._cams.setdefault(camera_id, OrderedDict())
        st = cam.get(track_id)
        if st is None:
            st = cam[track_id] = TrackState(camera_id=camera_id, track_id=track_id, first_seq=seq, ts_first=ts,
                                            ts_last=ts, emotion=EmotionTrack(rules=self.emotion_rules))
            self._evict(cam, ts)
        cam.move_to_end(track_id)
        if (seq, face_index) in st.face_keys:
            return None
        st.face_keys.add((seq, face_index))
        st.faces_seen += 1
        st.ts_last = max(st.ts_last, ts)
        return st

    def add_face(self, st: TrackState, face: TrackFace, evidence: Any) -> None:
        st.faces.append(face)
        if face.weight > st.best_weight:
            st.best_weight, st.best_evidence = face.weight, evidence

    def decide(self, st: TrackState, listed: Mapping[str, str]) -> tuple[TrackDecision, str | None]:
        """The track's decision now. When it changes the verdict the revision is bumped and the second value is
        the person it named before ("" when it named nobody); None when nothing changed."""
        decision = decide_track(st.faces, listed=listed, thresholds=self.thresholds, rule=self.rule,
                                camera_threshold=self.camera_thresholds.get(st.camera_id))
        if not verdict_changed(st.published, decision):
            return decision, None
        before = st.published or ""
        st.published = decision.person_id if decision.matched else None
        st.revision += 1
        return decision, before

    def end(self, camera_id: str, track_ids: Sequence[str]) -> None:
        cam = self._cams.get(camera_id)
        for t in track_ids:
            if cam is not None:
                cam.pop(t, None)

    def _evict(self, cam: OrderedDict[str, TrackState], now: float) -> None:
        for tid in [t for t, s in cam.items() if now - s.ts_last > self.idle_s]:
            del cam[tid]
        while len(cam) > self.max_tracks:
            cam.popitem(last=False)
