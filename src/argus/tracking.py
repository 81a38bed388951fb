"""Face tracks per camera, so Argus decides once per person per camera visit instead of once per frame.

A *track* is one person's face across consecutive frames of one camera. The tracker associates each frame's
detections with the live tracks of that camera (IoU and centre distance against a constant-velocity prediction,
plus embedding cosine when both sides have one) by a globally optimal assignment (Hungarian, no scipy). Then:

- **best face**: :func:`face_score` rates each face (size, sharpness, frontal pose, detector score) and
  :func:`should_embed` spends the embedder only on the first usable faces and on clearly better ones, capped per
  track — the Frigate idea of "a few good attempts per tracked person", not every frame;
- **one decision**: :func:`vote` and :func:`top_k_mean` turn the per-face gallery candidates of a track into one
  score per person with the margin to the runner-up, so a stranger who resembles two listed persons shows up as
  an ambiguous (small-margin) track rather than a string of per-frame alerts.

Lifecycle: a track is ``tentative`` until ``min_hits`` detections, then ``confirmed``; a confirmed track that
misses a frame is ``lost`` but still matchable; after ``max_age_s`` of *capture* time without a hit it ends and
is returned in :attr:`FrameResult.ended` so the caller can emit "track ended" (the point to decide). Capture time,
not wall time, drives everything, so a replay decides exactly as the first pass did.

Track ids are ``f"{camera_id}:{first_seq}:{index}"`` — the camera, the seq of the frame that opened the track
and the detection's index in it — like event ids, so a redelivered or replayed stream yields the same ids.
Frames of one camera must be fed in capture order (the topic is keyed by camera, so they are).

Bad input has defined behaviour and never raises mid-stream: a change of frame size (camera reconfigured),
a clock that jumps back by more than ``clock_tolerance_s``, or a seq that goes back without being a recent frame
(stream restarted) end every track of that camera with reason ``frame_size_changed`` / ``clock_jump`` /
``seq_reset`` and start fresh; a redelivered recent frame (same seq, same boxes) returns the cached result.
Only caller bugs — arrays of the wrong shape, non-finite numbers — raise :class:`InputError` ("expected X, got Y").

State is small (a few floats and one embedding per live track) and lives only in memory, on purpose: nothing is
serialised. When a Kafka partition moves to another replica (rebalance, crash), that replica starts with no
tracks for those cameras, so a visit in progress is split into two tracks with two decisions. That is safe: the
alerter's cooldown per (person, camera) runs on capture time and suppresses the second alert, and event ids stay
deterministic, so the only cost is one extra "track ended" record and possibly one extra embedding budget.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from argus.errors import ConfigError, InputError
from argus.faces.boxes import iou
from argus.faces.types import Detections, FaceQuality, check_array

TrackState = Literal["tentative", "confirmed", "lost"]
EndReason = Literal["max_age", "frame_size_changed", "clock_jump", "seq_reset", "closed"]

_GATED = 1e6  # cost of a forbidden pair: finite so the Hungarian arithmetic stays exact, far above any real cost
_MAX_PREDICT_S = 1.0  # extrapolate motion at most this long: a coasting track must not fly off across the frame
_MIN_DT_S = 0.02  # frames closer in capture time than this give no velocity: dx / tiny dt would explode
_APPEARANCE_MOMENTUM = 0.8  # track appearance = EMA of its face embeddings: one odd face cannot flip it


@dataclass(frozen=True, kw_only=True)
class TrackerConfig:
    """Knobs of association, lifecycle and the embedding budget; defaults fit ~5 fps sampling and dlib's 128-d."""

    max_age_s: float = 2.0  # capture seconds without a hit before a track ends (10 frames at 5 fps)
    min_hits: int = 3  # detections before a track is confirmed: one-frame false detections stay tentative
    min_iou: float = 0.1  # a pair may match if it overlaps the prediction at least this much ...
    max_distance: float = 1.5  # ... or its centre is within this many track-box sizes (fast faces at low fps)
    embedding_weight: float = 0.7  # share of the cost given to appearance when both sides have an embedding:
    # more than half, because boxes say where a face is but only the embedding says whose it is
    embedding_scale: float = 0.15  # cosine drop that costs as much as no overlap: dlib puts one person's faces
    # at cos >= 0.91 and two people's at <= 0.90 (embedder.py), so the useful range is narrow
    min_cosine: float = 0.7  # below this the pair is surely two people, whatever the boxes say
    clock_tolerance_s: float = 0.5  # backwards capture-time jitter that is tolerated (treated as no time passing)
    max_embeddings: int = 8  # embeddings per track at most (Frigate: 12 attempts per person)
    initial_embeddings: int = 2  # the first usable faces are embedded unconditionally: a quick first decision
    retry_gain: float = 0.15  # after that, embed only a face this much better than the best embedded so far
    min_face_score: float = 0.1  # faces scoring below this are not worth an embedding at all: at 0.2, 50-60 px
    # faces with blur ~30 (score ~0.15) left whole listed visits with 0-1 embedded faces (argus.trackeval)
    replay_cache: int = 16  # recent frames remembered so a redelivered frame returns the same assignment

    def __post_init__(self) -> None:
        positive = {"max_age_s": self.max_age_s, "max_distance": self.max_distance,
                    "embedding_scale": self.embedding_scale}
        for name, value in positive.items():
            if not value > 0:
                raise ConfigError(f"tracker {name}: expected > 0, got {value}")
        for name, count in {"min_hits": self.min_hits, "max_embeddings": self.max_embeddings}.items():
            if count < 1:
                raise ConfigError(f"tracker {name}: expected >= 1, got {count}")
        if not 0.0 <= self.embedding_weight <= 1.0:
            raise ConfigError(f"tracker embedding_weight: expected within [0, 1], got {self.embedding_weight}")
        if self.clock_tolerance_s < 0 or self.retry_gain < 0 or self.initial_embeddings < 0 or self.replay_cache < 0:
            raise ConfigError("tracker clock_tolerance_s, retry_gain, initial_embeddings, replay_cache: "
                              "expected >= 0, got a negative value")


@dataclass(slots=True, kw_only=True)
class Track:
    """Mutable state of one live track (owned by its CameraTracker; read it, do not change it)."""

    track_id: str
    first_seq: int
    first_ts: float
    last_seq: int
    last_ts: float  # capture time of the last hit
    box: np.ndarray  # (4,) float64, the last matched box
    velocity: np.ndarray  # (2,) float64, smoothed centre velocity in pixels per capture second
    hits: int = 1
    missed: bool = False  # missed the most recent frame
    appearance: np.ndarray | None = None  # (D,) unit vector, EMA of this track's face embeddings
    embedded: int = 0  # faces embedded for this track (the should_embed budget)
    best_embedded_score: float = 0.0  # face_score of the best face embedded so far

    def state(self, min_hits: int) -> TrackState:
        if self.hits < min_hits:
            return "tentative"
        return "lost" if self.missed else "confirmed"

    def predict(self, ts: float) -> np.ndarray:
        """The last box moved by the velocity over the elapsed capture time (capped); size kept as is."""
        dt = min(max(ts - self.last_ts, 0.0), _MAX_PREDICT_S)
        dx, dy = self.velocity * dt
        return self.box + np.array([dx, dy, dx, dy])


@dataclass(frozen=True, kw_only=True)
class Assignment:
    """The track one detection (``index`` in the frame) belongs to, as of this frame."""

    index: int
    track_id: str
    state: TrackState
    is_new: bool  # this detection opened the track
    hits: int
    embedded: int
    best_embedded_score: float


@dataclass(frozen=True, kw_only=True)
class EndedTrack:
    """A track that is over: the caller's cue to emit "track ended" and make the track's one decision."""

    camera_id: str
    track_id: str
    reason: EndReason
    first_seq: int
    last_seq: int
    first_ts: float
    last_ts: float
    hits: int
    confirmed: bool  # False: never reached min_hits, most likely a false detection — usually nothing to decide
    embedded: int


@dataclass(frozen=True, kw_only=True)
class FrameResult:
    """One frame's outcome: an assignment per detection (in detection order) and the tracks that ended."""

    camera_id: str
    seq: int
    assignments: tuple[Assignment, ...]
    ended: tuple[EndedTrack, ...]


def assign(cost: np.ndarray, max_cost: float = _GATED / 2) -> list[tuple[int, int]]:
    """Minimum-total-cost one-to-one (row, col) pairs, Hungarian with potentials, O(n²·m); sorted by row.

    Pairs costing more than ``max_cost`` are dropped afterwards. With forbidden pairs priced far above every real
    cost, minimising the total first maximises the number of allowed pairs, then minimises their cost — so one
    greedy early choice can never starve two others (the failure of greedy-by-cost).
    """
    c = np.asarray(cost, np.float64)
    if c.ndim != 2:
        raise InputError(f"assignment cost: expected a 2-d matrix, got shape {c.shape}")
    if not np.all(np.isfinite(c)):
        raise InputError("assignment cost: expected finite values, got NaN or inf")
    transposed = c.shape[0] > c.shape[1]
    rows = (c.T if transposed else c).tolist()
    n, m = len(rows), len(rows[0]) if rows else 0
    if n == 0 or m == 0:
        return []
    u, v = [0.0] * (n + 1), [0.0] * (m + 1)
    match, way = [0] * (m + 1), [0] * (m + 1)  # match[j]: row (1-based) assigned to column j
    for i in range(1, n + 1):
        match[0], j0 = i, 0
        minv, used = [math.inf] * (m + 1), [False] * (m + 1)
        while True:  # grow an alternating tree from row i until it reaches a free column
            used[j0] = True
            i0, delta, j1 = match[j0], math.inf, 0
            for j in range(1, m + 1):
                if not used[j]:
                    reduced = rows[i0 - 1][j - 1] - u[i0] - v[j]
                    if reduced < minv[j]:
                        minv[j], way[j] = reduced, j0
                    if minv[j] < delta:
                        delta, j1 = minv[j], j
            for j in range(m + 1):
                if used[j]:
                    u[match[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if match[j0] == 0:
                break
        while j0:  # flip the augmenting path
            j1 = way[j0]
            match[j0] = match[j1]
            j0 = j1
    pairs = [(match[j] - 1, j - 1) for j in range(1, m + 1) if match[j]]
    if transposed:
        pairs = [(b, a) for a, b in pairs]
    return sorted((r, k) for r, k in pairs if c[r, k] <= max_cost)


def _centres(b: np.ndarray) -> np.ndarray:
    return np.stack([(b[:, 0] + b[:, 2]) * 0.5, (b[:, 1] + b[:, 3]) * 0.5], axis=1)


class CameraTracker:
    """The live tracks of one camera; feed it every analysed frame of that camera, faces or not, in order."""

    def __init__(self, camera_id: str, config: TrackerConfig | None = None) -> None:
        self.camera_id = camera_id
        self.config = config or TrackerConfig()
        self.tracks: dict[str, Track] = {}
        self._size: tuple[int, int] | None = None
        self._last_ts: float | None = None
        self._last_seq: int | None = None
        self._recent: OrderedDict[int, tuple[np.ndarray, FrameResult]] = OrderedDict()

    def update(self, *, seq: int, ts: float, width: int, height: int, detections: Detections,
               embeddings: np.ndarray | None = None) -> FrameResult:
        """Associate one frame's detections with this camera's tracks.

        ``embeddings`` (N, D) is optional: a row of zeros means "not embedded"; known rows (unit vectors) add the
        appearance term and refresh the matched track's appearance.
        """
        n = len(detections)
        if not math.isfinite(ts):
            raise InputError(f"camera {self.camera_id!r} frame {seq}: expected a finite ts, got {ts}")
        if not np.all(np.isfinite(detections.boxes)):
            raise InputError(f"camera {self.camera_id!r} frame {seq}: expected finite boxes, got NaN or inf")
        if embeddings is not None:
            check_array("embeddings", embeddings, (n, None))
            if not np.all(np.isfinite(embeddings)):
                raise InputError(f"camera {self.camera_id!r} frame {seq}: expected finite embeddings, got NaN or inf")
            dims = {t.appearance.shape[0] for t in self.tracks.values() if t.appearance is not None}
            if dims and dims != {embeddings.shape[1]}:
                raise InputError(f"embeddings: expected dimension {min(dims)}, got {embeddings.shape[1]}")
        boxes = detections.boxes.astype(np.float64)
        cached = self._recent.get(seq)
        if cached is not None and np.array_equal(cached[0], boxes):
            return cached[1]  # a redelivered frame: same answer, no double-counted hits
        reset: EndReason | None = None
        if self._size is not None and self._size != (width, height):
            reset = "frame_size_changed"
        elif self._last_ts is not None and ts < self._last_ts - self.config.clock_tolerance_s:
            reset = "clock_jump"
        elif self._last_seq is not None and seq <= self._last_seq:
            reset = "seq_reset"
        ended = self.end_all(reset) if reset else []
        if reset:
            self._last_ts = None  # a fresh start: the new clock is the reference now
        self._size = (width, height)
        ts = ts if self._last_ts is None else max(ts, self._last_ts)  # tolerated jitter: no time passes
        self._last_ts, self._last_seq = ts, seq
        for tid in [t for t, tr in self.tracks.items() if ts - tr.last_ts > self.config.max_age_s]:
            ended.append(self._end(self.tracks.pop(tid), "max_age"))

        tracks = list(self.tracks.values())
        pairs = assign(self._costs(tracks, ts, boxes, embeddings)) if tracks and n else []
        matched = {d: tracks[t] for t, d in pairs}
        for tr in tracks:
            tr.missed = True
        out: list[Assignment] = []
        for d in range(n):
            emb = None if embeddings is None else np.asarray(embeddings[d], np.float64)
            if emb is not None and float(np.linalg.norm(emb)) < 0.5:
                emb = None
            hit = matched.get(d)
            if hit is not None:
                self._hit(hit, seq, ts, boxes[d])
                tr = hit
            else:
                tr = Track(track_id=f"{self.camera_id}:{seq}:{d}", first_seq=seq, first_ts=ts, last_seq=seq,
                           last_ts=ts, box=boxes[d].copy(), velocity=np.zeros(2))
                self.tracks[tr.track_id] = tr
            tr.missed = False
            if emb is not None:
                _fold_appearance(tr, emb)
            out.append(Assignment(index=d, track_id=tr.track_id, state=tr.state(self.config.min_hits),
                                  is_new=tr.first_seq == seq and tr.hits == 1, hits=tr.hits,
                                  embedded=tr.embedded, best_embedded_score=tr.best_embedded_score))
        result = FrameResult(camera_id=self.camera_id, seq=seq, assignments=tuple(out), ended=tuple(ended))
        if self.config.replay_cache:
            self._recent[seq] = (boxes, result)
            while len(self._recent) > self.config.replay_cache:
                self._recent.popitem(last=False)
        return result

    def record_embedding(self, track_id: str, *, embedding: np.ndarray, score: float) -> None:
        """Tell the track one of its faces (``score`` from :func:`face_score`) was embedded: budget + appearance."""
        tr = self.tracks.get(track_id)
        if tr is None:
            raise InputError(f"camera {self.camera_id!r}: expected a live track id, got {track_id!r}")
        check_array("embedding", embedding, (None,))
        _fold_appearance(tr, np.asarray(embedding, np.float64))
        tr.embedded += 1
        tr.best_embedded_score = max(tr.best_embedded_score, float(score))

    def end_all(self, reason: EndReason) -> list[EndedTrack]:
        """End every live track (camera closed, partition revoked, bad input) and forget the replay cache."""
        ended = [self._end(tr, reason) for tr in self.tracks.values()]
        self.tracks.clear()
        self._recent.clear()
        return ended

    def _costs(self, tracks: list[Track], ts: float, boxes: np.ndarray, embeddings: np.ndarray | None) -> np.ndarray:
        """(tracks, detections) cost in [0, 1], or _GATED where the pair is implausible.

        Motion cost: half (1 - IoU with the prediction) — precise when faces move little between frames — and half
        the centre distance in track-box sizes — still informative when a fast face at low fps no longer overlaps.
        """
        cfg = self.config
        pred = np.stack([t.predict(ts) for t in tracks])
        side = np.sqrt(np.clip(pred[:, 2] - pred[:, 0], 1, None) * np.clip(pred[:, 3] - pred[:, 1], 1, None))
        overlap = iou(pred, boxes)
        dist = np.linalg.norm(_centres(pred)[:, None, :] - _centres(boxes)[None, :, :], axis=2) / side[:, None]
        cost = 0.5 * (1.0 - overlap) + 0.5 * np.minimum(dist / cfg.max_distance, 1.0)
        ok = (overlap >= cfg.min_iou) | (dist <= cfg.max_distance)
        known_t = np.array([t.appearance is not None for t in tracks])
        if embeddings is not None and known_t.any():
            emb = np.asarray(embeddings, np.float64)
            app = np.stack([t.appearance if t.appearance is not None else np.zeros(emb.shape[1]) for t in tracks])
            cos = app @ emb.T
            known = known_t[:, None] & (np.linalg.norm(emb, axis=1) >= 0.5)[None, :]
            app_cost = np.clip((1.0 - cos) / cfg.embedding_scale, 0.0, 1.0)
            w = cfg.embedding_weight
            cost = np.where(known, (1 - w) * cost + w * app_cost, cost)
            ok &= ~known | (cos >= cfg.min_cosine)
        return np.where(ok, cost, _GATED)

    def _hit(self, tr: Track, seq: int, ts: float, box: np.ndarray) -> None:
        dt = ts - tr.last_ts
        if dt >= _MIN_DT_S:
            measured = (_centres(box[None])[0] - _centres(tr.box[None])[0]) / dt
            tr.velocity = measured if tr.hits == 1 else 0.5 * tr.velocity + 0.5 * measured
        tr.box, tr.last_seq, tr.last_ts = box.copy(), seq, ts
        tr.hits += 1

    def _end(self, tr: Track, reason: EndReason) -> EndedTrack:
        return EndedTrack(camera_id=self.camera_id, track_id=tr.track_id, reason=reason, first_seq=tr.first_seq,
                          last_seq=tr.last_seq, first_ts=tr.first_ts, last_ts=tr.last_ts, hits=tr.hits,
                          confirmed=tr.hits >= self.config.min_hits, embedded=tr.embedded)


def _fold_appearance(tr: Track, emb: np.ndarray) -> None:
    norm = float(np.linalg.norm(emb))
    if not math.isfinite(norm) or norm < 0.5:
        raise InputError(f"track {tr.track_id}: expected a unit-norm embedding, got norm {norm:.4f}")
    unit = emb / norm
    if tr.appearance is not None and tr.appearance.shape != unit.shape:
        raise InputError(f"track {tr.track_id}: expected a {tr.appearance.shape[0]}-d embedding, got {unit.shape}")
    if tr.appearance is None:
        tr.appearance = unit
    else:
        mixed = _APPEARANCE_MOMENTUM * tr.appearance + (1 - _APPEARANCE_MOMENTUM) * unit
        tr.appearance = mixed / max(float(np.linalg.norm(mixed)), 1e-12)


class Tracker:
    """All cameras' trackers of one replica: camera id → :class:`CameraTracker`, created on first sight."""

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self.cameras: dict[str, CameraTracker] = {}

    def camera(self, camera_id: str) -> CameraTracker:
        if camera_id not in self.cameras:
            self.cameras[camera_id] = CameraTracker(camera_id, self.config)
        return self.cameras[camera_id]

    def update(self, camera_id: str, *, seq: int, ts: float, width: int, height: int, detections: Detections,
               embeddings: np.ndarray | None = None) -> FrameResult:
        return self.camera(camera_id).update(seq=seq, ts=ts, width=width, height=height, detections=detections,
                                             embeddings=embeddings)

    def record_embedding(self, camera_id: str, track_id: str, *, embedding: np.ndarray, score: float) -> None:
        self.camera(camera_id).record_embedding(track_id, embedding=embedding, score=score)

    def end_camera(self, camera_id: str, reason: EndReason = "closed") -> list[EndedTrack]:
        """End and forget one camera's tracks (e.g. its partition was revoked from this replica)."""
        cam = self.cameras.pop(camera_id, None)
        return cam.end_all(reason) if cam is not None else []


# ---------------------------------------------------------------------------------------------- best face

SIZE_FLOOR_PX = 20.0  # below this the embedding lands near everyone (quality.py): worth nothing
SIZE_GOOD_PX = 80.0  # dlib aligns to 150 px; beyond ~80 px of face, more pixels add little identity
BLUR_GOOD = 100.0  # Laplacian variance of a sharp aligned crop (the usual blur-detection cut-off)
YAW_PROFILE = 0.5  # |nose offset| / eye distance at which a face is ~profile: the far eye is hidden


def frontal_score(landmarks: np.ndarray) -> float:
    """1 for a frontal face, down to 0 for a profile, judged from the 5 landmarks (no pose model needed).

    Yaw: turning the head moves the nose towards one eye, so the nose's offset from the eye midpoint along the eye
    line, over the eye distance, measures it — embeddings of turned faces drift towards other identities. Roll:
    the eye-line angle; alignment undoes roll, so it costs little (45° → 0.75) but large roll goes with odd poses.
    """
    check_array("landmarks", np.asarray(landmarks), (5, 2))
    p = np.asarray(landmarks, np.float64)
    eye_vec = p[1] - p[0]
    eye_dist = float(np.linalg.norm(eye_vec))
    if not math.isfinite(eye_dist) or eye_dist < 1e-6:
        return 0.0
    axis = eye_vec / eye_dist
    yaw = abs(float(np.dot(p[2] - (p[0] + p[1]) * 0.5, axis))) / eye_dist
    roll = abs(math.atan2(eye_vec[1], eye_vec[0]))
    return max(0.0, 1.0 - yaw / YAW_PROFILE) * max(0.0, 1.0 - 0.5 * roll / (math.pi / 2))


def face_score(*, quality: FaceQuality, landmarks: np.ndarray, det_score: float) -> float:
    """How good a face is for identification, in [0, 1]: the product of four terms, each in [0, 1].

    A product, not a sum, because any one defect alone ruins an embedding: a sharp frontal 15-px face is as
    useless as a large, blurred one. Terms: size (floor → good, linear), sharpness (blur / BLUR_GOOD, capped;
    comparable because the crops are aligned to one size), :func:`frontal_score`, and the detector score (low for
    occluded or partial faces, which the other terms cannot see).
    """
    if not all(math.isfinite(x) for x in (quality.size, quality.blur, det_score)):
        raise InputError(f"face_score: expected finite size, blur and det_score, got {quality}, {det_score}")
    size = min(1.0, max(0.0, (quality.size - SIZE_FLOOR_PX) / (SIZE_GOOD_PX - SIZE_FLOOR_PX)))
    sharp = min(1.0, max(0.0, quality.blur / BLUR_GOOD))
    return size * sharp * frontal_score(landmarks) * min(1.0, max(0.0, det_score))


class EmbedHistory(Protocol):
    """What should_embed needs to know about a track (a Track or this frame's Assignment)."""

    @property
    def embedded(self) -> int: ...

    @property
    def best_embedded_score(self) -> float: ...


def should_embed(track: EmbedHistory, candidate_score: float, config: TrackerConfig | None = None) -> bool:
    """Whether to spend the embedder on this face of this track.

    Unusable faces (below ``min_face_score``) never; none past ``max_embeddings`` (bounded cost per visit however
    long someone stands there); the first ``initial_embeddings`` usable faces always (a decision comes quickly);
    afterwards only a face ``retry_gain`` better than the best embedded so far — a near-identical face would
    only add a correlated vote.
    """
    cfg = config or TrackerConfig()
    if candidate_score < cfg.min_face_score or track.embedded >= cfg.max_embeddings:
        return False
    if track.embedded < cfg.initial_embeddings:
        return True
    return candidate_score >= track.best_embedded_score * (1.0 + cfg.retry_gain)


# ---------------------------------------------------------------------------------------------- aggregation


@dataclass(frozen=True, kw_only=True)
class FaceCandidates:
    """One embedded face of a track: its gallery candidates (person_id, cosine) and its quality weight."""

    candidates: tuple[tuple[str, float], ...]
    weight: float  # face_score of the face; 0 = ignore it


@dataclass(frozen=True, kw_only=True)
class PersonScore:
    """A person's track-level score, the faces that support it, and its lead over the best other person."""

    person_id: str
    score: float
    faces: int
    margin: float  # score minus the best other person's score (0 when there is none): small = ambiguous


def _per_face(faces: Sequence[FaceCandidates]) -> list[tuple[float, dict[str, float]]]:
    """(weight, person → best cosine) per usable face; a person listed twice (two templates) keeps its best."""
    out = []
    for f in faces:
        if not math.isfinite(f.weight) or f.weight < 0:
            raise InputError(f"face weight: expected a finite value >= 0, got {f.weight}")
        best: dict[str, float] = {}
        for pid, s in f.candidates:
            if not math.isfinite(s):
                raise InputError(f"candidate {pid!r}: expected a finite score, got {s}")
            best[pid] = max(s, best.get(pid, -math.inf))
        if f.weight > 0 and best:
            out.append((f.weight, best))
    return out


def _ranked(scores: dict[str, float], support: dict[str, int]) -> tuple[PersonScore, ...]:
    order = sorted(scores, key=lambda p: (-scores[p], p))
    out = []
    for i, p in enumerate(order):
        other = scores[order[1]] if i == 0 and len(order) > 1 else scores[order[0]] if i > 0 else 0.0
        out.append(PersonScore(person_id=p, score=scores[p], faces=support[p], margin=scores[p] - other))
    return tuple(out)


def vote(faces: Sequence[FaceCandidates]) -> tuple[PersonScore, ...]:
    """Quality-weighted vote: each face votes for its top candidate with its weight (Frigate's scheme).

    score(p) = Σ weight·cosine over the faces voting for p / Σ weight over all faces: the weighted mean cosine when
    every face agrees (so it compares with the watch-list threshold), shrunk by the share of faces that disagree —
    a stranger whose faces split between two look-alikes scores low with a small margin. Best first.
    """
    usable = _per_face(faces)
    total = sum(w for w, _ in usable)
    scores: dict[str, float] = {}
    support: dict[str, int] = {}
    for w, best in usable:
        top = min(best, key=lambda p: (-best[p], p))
        scores[top] = scores.get(top, 0.0) + w * best[top] / total
        support[top] = support.get(top, 0) + 1
    return _ranked(scores, support)


def top_k_mean(faces: Sequence[FaceCandidates], k: int = 3) -> tuple[PersonScore, ...]:
    """Per person, the mean of its k best cosines over the track's faces (k capped at the number of faces).

    Robust to a few bad faces (only the best count) yet not to be won by one lucky face: a face that does not list
    the person counts as 0 (the person was outside that face's top-k), so support from a single face of a long
    track is diluted. Weights only select usable faces (> 0); the best faces decide, whatever their share.
    """
    if k < 1:
        raise InputError(f"top_k_mean k: expected >= 1, got {k}")
    usable = _per_face(faces)
    k_eff = min(k, len(usable))
    persons = sorted({p for _, best in usable for p in best})
    scores: dict[str, float] = {}
    support: dict[str, int] = {}
    for p in persons:
        listed = sorted((best[p] for _, best in usable if p in best), reverse=True)[:k_eff]
        scores[p] = sum(listed) / k_eff
        support[p] = len(listed)
    return _ranked(scores, support)
