"""Tracks: each rule of argus.tracking (association, lifecycle, bad input, embed budget, aggregation) as a table."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest

from argus.errors import ConfigError, InputError
from argus.faces.types import Detections, FaceQuality
from argus.tracking import (
    Assignment,
    CameraTracker,
    FaceCandidates,
    FrameResult,
    Tracker,
    TrackerConfig,
    assign,
    face_score,
    frontal_score,
    should_embed,
    top_k_mean,
    vote,
)

CAM = "gate-1"
W, H = 640, 480
DT = 0.2  # 5 fps sampling


def _landmarks(box: tuple[float, float, float, float], yaw: float = 0.0) -> np.ndarray:
    """Frontal 5 points inside ``box``; ``yaw`` shifts the nose by that fraction of the eye distance."""
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    eye_d = 0.4 * w
    return np.array([[x1 + 0.3 * w, y1 + 0.35 * h], [x1 + 0.7 * w, y1 + 0.35 * h],
                     [x1 + 0.5 * w + yaw * eye_d, y1 + 0.55 * h],
                     [x1 + 0.35 * w, y1 + 0.75 * h], [x1 + 0.65 * w, y1 + 0.75 * h]], np.float32)


def _box(cx: float, cy: float, side: float = 60.0) -> tuple[float, float, float, float]:
    return (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)


def _dets(boxes: list[tuple[float, float, float, float]]) -> Detections:
    if not boxes:
        return Detections.empty()
    return Detections(boxes=np.array(boxes, np.float32), scores=np.full(len(boxes), 0.99, np.float32),
                      landmarks=np.stack([_landmarks(b) for b in boxes]))


def _identities(cos_ab: float = 0.8, dim: int = 128) -> dict[str, np.ndarray]:
    """Two unit embeddings with a dlib-like cosine between different people (embedder.py: <= 0.90)."""
    rng = np.random.default_rng(7)
    a = rng.normal(size=dim)
    a /= np.linalg.norm(a)
    o = rng.normal(size=dim)
    o -= o.dot(a) * a
    o /= np.linalg.norm(o)
    return {"A": a, "B": cos_ab * a + np.sqrt(1 - cos_ab**2) * o}


def _noisy(v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Another face of the same person: cosine ~0.97 to ``v``."""
    e = v + rng.normal(scale=0.02, size=v.shape)
    return e / np.linalg.norm(e)


@dataclass
class Frame:
    seq: int
    ts: float
    faces: list[tuple[str, tuple[float, float, float, float]]]  # (identity, box), in detection order
    size: tuple[int, int] = (W, H)


@dataclass
class Run:
    results: list[FrameResult] = field(default_factory=list)
    ids: list[dict[str, str]] = field(default_factory=list)  # per frame: identity -> track id

    @property
    def ended(self) -> list[tuple[str, str]]:
        return [(e.track_id, e.reason) for r in self.results for e in r.ended]


def _run(frames: list[Frame], *, with_embeddings: bool = False, config: TrackerConfig | None = None) -> Run:
    ident = _identities()
    rng = np.random.default_rng(3)
    cam = CameraTracker(CAM, config)
    run = Run()
    for f in frames:
        emb = None
        if with_embeddings and f.faces:
            emb = np.stack([_noisy(ident[who], rng) for who, _ in f.faces]).astype(np.float32)
        r = cam.update(seq=f.seq, ts=f.ts, width=f.size[0], height=f.size[1],
                       detections=_dets([b for _, b in f.faces]), embeddings=emb)
        assert [a.index for a in r.assignments] == list(range(len(f.faces)))
        run.results.append(r)
        run.ids.append({who: a.track_id for (who, _), a in zip(f.faces, r.assignments, strict=True)})
    return run


def _crossing(n: int = 11) -> list[Frame]:
    """A walks right, B walks left on one line, overlapping mid-way; detection order alternates.

    Just after they pass (k=6), each face's last box is nearer the *other* face's new box, so a tracker
    without motion prediction swaps them.
    """
    frames = []
    for k in range(n):
        a, b = ("A", _box(100 + 40 * k, 200)), ("B", _box(520 - 40 * k, 200))
        frames.append(Frame(seq=k, ts=100.0 + DT * k, faces=[a, b] if k % 2 else [b, a]))
    return frames


def _swap() -> list[Frame]:
    """A and B stand side by side, then (one low-fps frame later) stand in each other's place."""
    frames = []
    for k in range(7):
        left, right = ("A", "B") if k < 4 else ("B", "A")
        frames.append(Frame(seq=k, ts=100.0 + DT * k, faces=[(left, _box(200, 200)), (right, _box(270, 200))]))
    return frames


@pytest.mark.parametrize(("scenario", "with_embeddings", "ids_follow_identity"), [
    ("crossing", False, True),  # constant-velocity prediction carries each face through the overlap
    ("crossing", True, True),
    ("swap", True, True),  # boxes alone cannot tell; appearance can
    ("swap", False, False),  # the documented limit of motion alone: ids follow positions
])
def test_faces_crossing_keep_their_ids(scenario: str, with_embeddings: bool, ids_follow_identity: bool) -> None:
    frames = _crossing() if scenario == "crossing" else _swap()
    run = _run(frames, with_embeddings=with_embeddings)
    a_ids = {ids["A"] for ids in run.ids}
    b_ids = {ids["B"] for ids in run.ids}
    assert (len(a_ids) == 1 and len(b_ids) == 1) is ids_follow_identity
    assert run.ended == []  # a swap of ids is never an ended track
    assert len(a_ids | b_ids) == 2


@pytest.mark.parametrize(("cos_to_track", "same_track"), [
    (0.97, True),  # the same person
    (0.75, True),  # a look-alike in the very same place: appearance alone does not overrule the boxes
    (0.5, False),  # surely someone else (below min_cosine), even exactly where the track is
])
def test_appearance_gate(cos_to_track: float, same_track: bool) -> None:
    ident = _identities(cos_ab=cos_to_track)
    cam = CameraTracker(CAM)
    first = cam.update(seq=0, ts=100, width=W, height=H, detections=_dets([_box(300, 200)]),
                       embeddings=ident["A"][None].astype(np.float32))
    then = cam.update(seq=1, ts=100 + DT, width=W, height=H, detections=_dets([_box(300, 200)]),
                      embeddings=ident["B"][None].astype(np.float32))
    assert (then.assignments[0].track_id == first.assignments[0].track_id) is same_track


@pytest.mark.parametrize(("gap_s", "same_track"), [
    (0.4, True),
    (1.8, True),  # within max_age_s = 2.0: coasted, then re-found
    (2.4, False),  # past max_age: the old track ended, a new one starts
    (30.0, False),
])
def test_face_leaving_and_coming_back(gap_s: float, same_track: bool) -> None:
    frames = [Frame(seq=k, ts=100.0 + DT * k, faces=[("A", _box(300, 200))]) for k in range(4)]
    back = 100.0 + DT * 3 + gap_s
    frames += [Frame(seq=10, ts=back, faces=[]), Frame(seq=11, ts=back + 0.01, faces=[("A", _box(300, 200))])]
    run = _run(frames)
    first, last = run.ids[0]["A"], run.ids[-1]["A"]
    assert (first == last) is same_track
    if same_track:
        assert run.ended == []
        assert run.results[-1].assignments[0].state == "confirmed"
    else:
        assert run.ended == [(first, "max_age")]
        assert last == f"{CAM}:11:0"
        assert run.results[-1].assignments[0].is_new


@pytest.mark.parametrize("min_hits", [1, 2, 3, 5])
def test_track_confirmed_after_n_hits(min_hits: int) -> None:
    frames = [Frame(seq=k, ts=100.0 + DT * k, faces=[("A", _box(300 + 5 * k, 200))]) for k in range(6)]
    run = _run(frames, config=TrackerConfig(min_hits=min_hits))
    states = [r.assignments[0].state for r in run.results]
    assert states == ["tentative"] * (min_hits - 1) + ["confirmed"] * (6 - min_hits + 1)
    assert [r.assignments[0].hits for r in run.results] == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize(("empty_after_s", "ends"), [
    ([0.2, 0.4, 1.0, 1.9, 2.0], False),  # empty frames up to max_age end nothing (the track is only "lost")
    ([0.2, 2.1], True),
    ([5.0], True),  # one late frame is enough: ageing runs on capture time, not on frame counts
])
def test_empty_frames_end_nothing_until_max_age(empty_after_s: list[float], ends: bool) -> None:
    frames = [Frame(seq=k, ts=100.0 + DT * k, faces=[("A", _box(300, 200))]) for k in range(3)]
    last = frames[-1].ts
    frames += [Frame(seq=10 + i, ts=last + s, faces=[]) for i, s in enumerate(empty_after_s)]
    run = _run(frames)
    assert [len(r.ended) for r in run.results[:-1]] == [0] * (len(frames) - 1)
    assert run.ended == ([(f"{CAM}:0:0", "max_age")] if ends else [])
    if not ends:
        cam_track = run.results[2].assignments[0]
        assert cam_track.state == "confirmed"


def test_lost_state_while_coasting() -> None:
    cam = CameraTracker(CAM)
    for k in range(3):
        cam.update(seq=k, ts=100 + DT * k, width=W, height=H, detections=_dets([_box(300, 200)]))
    cam.update(seq=3, ts=100 + DT * 3, width=W, height=H, detections=_dets([]))
    assert cam.tracks[f"{CAM}:0:0"].state(cam.config.min_hits) == "lost"


@pytest.mark.parametrize(("name", "size", "ts_step", "reason"), [
    ("same size, forward clock", (W, H), DT, None),
    ("resolution changed", (1280, 720), DT, "frame_size_changed"),
    ("clock jitter back within tolerance", (W, H), -0.3, None),
    ("clock jumped back", (W, H), -60.0, "clock_jump"),
])
def test_bad_stream_input_resets_the_camera(name: str, size: tuple[int, int], ts_step: float,
                                            reason: str | None) -> None:
    frames = [Frame(seq=k, ts=100.0 + DT * k, faces=[("A", _box(300, 200))]) for k in range(3)]
    frames.append(Frame(seq=3, ts=frames[-1].ts + ts_step, faces=[("A", _box(300, 200))], size=size))
    frames.append(Frame(seq=4, ts=frames[-1].ts + DT, faces=[("A", _box(300, 200))], size=size))
    run = _run(frames)  # never raises
    if reason is None:
        assert run.ended == []
        assert {ids["A"] for ids in run.ids} == {f"{CAM}:0:0"}
    else:
        assert run.ended == [(f"{CAM}:0:0", reason)]
        assert run.ids[3]["A"] == run.ids[4]["A"] == f"{CAM}:3:0"  # a fresh track on the new stream
        assert run.results[4].ended == ()  # the new clock is the reference: no spurious max_age


def test_clock_jump_on_a_camera_without_tracks_still_adopts_the_new_clock() -> None:
    frames = [Frame(seq=0, ts=100.0, faces=[]), Frame(seq=1, ts=40.0, faces=[("A", _box(300, 200))]),
              Frame(seq=2, ts=40.2, faces=[("A", _box(300, 200))]), Frame(seq=3, ts=43.0, faces=[])]
    assert _run(frames).ended == [(f"{CAM}:1:0", "max_age")]  # ages on the new clock, not from ts=100


@pytest.mark.parametrize(("name", "replayed", "reason"), [
    ("redelivered recent frame", "same", None),
    ("seq went back with other boxes (stream restarted)", "moved", "seq_reset"),
])
def test_seq_going_back(name: str, replayed: str, reason: str | None) -> None:
    cam = CameraTracker(CAM)
    results = [cam.update(seq=k, ts=100 + DT * k, width=W, height=H, detections=_dets([_box(300, 200)]))
               for k in range(3)]
    box = _box(300, 200) if replayed == "same" else _box(100, 100)
    again = cam.update(seq=1, ts=100 + DT, width=W, height=H, detections=_dets([box]))
    if reason is None:
        assert again == results[1]
        assert cam.tracks[f"{CAM}:0:0"].hits == 3  # no hit counted twice
    else:
        assert [(e.track_id, e.reason) for e in again.ended] == [(f"{CAM}:0:0", reason)]


@pytest.mark.parametrize(("embedded", "best", "candidate", "expected"), [
    (0, 0.0, 0.5, True),  # the first usable face is always embedded
    (1, 0.9, 0.3, True),  # so is the second (initial_embeddings=2), even if worse
    (0, 0.0, 0.05, False),  # unusable (below min_face_score, 0.1): never
    (2, 0.6, 0.65, False),  # only 8 % better: a correlated vote, not worth it
    (2, 0.6, 0.69, True),  # 15 % better: clearly better
    (2, 0.6, 0.6 * 1.15, True),
    (7, 0.5, 0.9, True),
    (8, 0.5, 0.99, False),  # the cap holds however good the face
])
def test_should_embed(embedded: int, best: float, candidate: float, expected: bool) -> None:
    a = Assignment(index=0, track_id="t", state="confirmed", is_new=False, hits=5, embedded=embedded,
                   best_embedded_score=best)
    assert should_embed(a, candidate) is expected


def test_embed_budget_through_the_tracker() -> None:
    tracker = Tracker(TrackerConfig(max_embeddings=3, initial_embeddings=1))
    ident = _identities()
    embedded_at = []
    for k, score in enumerate([0.5, 0.52, 0.7, 0.71, 0.9, 0.95, 0.99]):
        r = tracker.update(CAM, seq=k, ts=100 + DT * k, width=W, height=H, detections=_dets([_box(300, 200)]))
        a = r.assignments[0]
        if should_embed(a, score, tracker.config):
            tracker.record_embedding(CAM, a.track_id, embedding=ident["A"], score=score)
            embedded_at.append(k)
    assert embedded_at == [0, 2, 4]  # first, then 0.7 >= 0.5*1.15, then 0.9 >= 0.7*1.15; then the cap


@pytest.mark.parametrize(("name", "quality", "yaw", "det", "lo", "hi"), [
    ("large sharp frontal", FaceQuality(size=100, blur=300), 0.0, 0.99, 0.95, 1.0),
    ("tiny", FaceQuality(size=18, blur=300), 0.0, 0.99, 0.0, 0.0),
    ("half-way size", FaceQuality(size=50, blur=300), 0.0, 1.0, 0.49, 0.51),
    ("blurred", FaceQuality(size=100, blur=20), 0.0, 0.99, 0.15, 0.25),
    ("turned head", FaceQuality(size=100, blur=300), 0.25, 0.99, 0.45, 0.55),
    ("profile", FaceQuality(size=100, blur=300), 0.6, 0.99, 0.0, 0.0),
    ("doubtful detection", FaceQuality(size=100, blur=300), 0.0, 0.5, 0.45, 0.55),
])
def test_face_score(name: str, quality: FaceQuality, yaw: float, det: float, lo: float, hi: float) -> None:
    s = face_score(quality=quality, landmarks=_landmarks(_box(300, 200, 100), yaw=yaw), det_score=det)
    assert lo <= s <= hi


def test_frontal_score_roll_costs_little_and_degenerate_is_zero() -> None:
    lm = _landmarks(_box(0, 0, 100)).astype(np.float64)
    c = np.cos(np.pi / 4)
    rot = np.array([[c, -c], [c, c]])
    assert frontal_score((lm @ rot.T).astype(np.float32)) == pytest.approx(0.75, abs=1e-3)
    assert frontal_score(np.zeros((5, 2), np.float32)) == 0.0


def _faces(rows: list[tuple[float, list[tuple[str, float]]]]) -> list[FaceCandidates]:
    return [FaceCandidates(candidates=tuple(c), weight=w) for w, c in rows]


LISTED = [(1.0, [("ann", 0.95), ("bob", 0.80)]), (0.5, [("ann", 0.93), ("bob", 0.82)]),
          (0.8, [("bob", 0.91), ("ann", 0.90)])]  # one odd face
STRANGER = [(1.0, [("ann", 0.91), ("bob", 0.90)]), (1.0, [("bob", 0.91), ("ann", 0.90)]),
            (1.0, [("ann", 0.905), ("bob", 0.90)]), (1.0, [("bob", 0.905), ("ann", 0.90)])]


@pytest.mark.parametrize(("name", "rows", "top", "score", "faces", "margin"), [
    ("listed person, one odd face", LISTED, "ann", (0.95 + 0.5 * 0.93) / 2.3, 2,
     (0.95 + 0.5 * 0.93 - 0.8 * 0.91) / 2.3),  # the odd face costs its weight share, not the decision
    ("stranger close to two listed persons", STRANGER, "ann", (0.91 + 0.905) / 4, 2, 0.0),
    ("zero-weight faces are ignored", [(0.0, [("bob", 0.99)]), (1.0, [("ann", 0.92)])], "ann", 0.92, 1, 0.92),
])
def test_vote(name: str, rows: list, top: str, score: float, faces: int, margin: float) -> None:
    got = vote(_faces(rows))
    assert got[0].person_id == top
    assert got[0].score == pytest.approx(score)
    assert got[0].faces == faces
    assert got[0].margin == pytest.approx(margin, abs=1e-9)
    if len(got) > 1:  # everyone else's margin is measured against the winner
        assert got[1].margin == pytest.approx(-margin, abs=1e-9)


@pytest.mark.parametrize(("name", "rows", "k", "top", "score", "margin"), [
    ("listed person", LISTED, 2, "ann", (0.95 + 0.93) / 2, (0.95 + 0.93) / 2 - (0.91 + 0.82) / 2),
    ("stranger close to two listed persons", STRANGER, 3, "ann", (0.91 + 0.905 + 0.90) / 3, 0.0),
    ("one lucky face of a long track is diluted", [(1.0, [("ann", 0.99)])] + [(1.0, [("bob", 0.85)])] * 3,
     3, "bob", 0.85, 0.85 - 0.99 / 3),
])
def test_top_k_mean(name: str, rows: list, k: int, top: str, score: float, margin: float) -> None:
    got = top_k_mean(_faces(rows), k=k)
    assert got[0].person_id == top
    assert got[0].score == pytest.approx(score)
    assert got[0].margin == pytest.approx(margin, abs=1e-9)


def test_aggregators_on_no_faces_and_bad_weights() -> None:
    assert vote([]) == () and top_k_mean([]) == ()
    with pytest.raises(InputError, match="expected a finite value >= 0, got -1"):
        vote(_faces([(-1.0, [("ann", 0.9)])]))


def test_ids_are_deterministic_across_identical_runs() -> None:
    frames = [*_crossing(), Frame(seq=40, ts=110.0, faces=[("A", _box(100, 100)), ("B", _box(400, 300))])]
    one, two = _run(frames, with_embeddings=True), _run(frames, with_embeddings=True)
    assert one.results == two.results
    assert set(one.ids[0].values()) == {f"{CAM}:0:0", f"{CAM}:0:1"}
    assert set(one.ids[-1].values()) == {f"{CAM}:40:0", f"{CAM}:40:1"}


def test_cameras_are_independent() -> None:
    tracker = Tracker()
    tracker.update("cam-a", seq=5, ts=100, width=W, height=H, detections=_dets([_box(300, 200)]))
    r = tracker.update("cam-b", seq=1, ts=50, width=1280, height=720, detections=_dets([_box(300, 200)]))
    assert r.ended == () and r.assignments[0].track_id == "cam-b:1:0"
    assert [e.reason for e in tracker.end_camera("cam-a", "closed")] == ["closed"]


def _brute_force(cost: np.ndarray) -> float:
    n, m = cost.shape
    if n <= m:
        return min(sum(cost[i, p[i]] for i in range(n)) for p in itertools.permutations(range(m), n))
    return _brute_force(cost.T)


@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (3, 2), (4, 4), (5, 3), (3, 6)])
def test_assign_is_globally_optimal(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    for _ in range(20):
        cost = rng.random(shape)
        pairs = assign(cost)
        assert len(pairs) == min(shape)
        assert len({r for r, _ in pairs}) == len({c for _, c in pairs}) == len(pairs)
        assert sum(cost[r, c] for r, c in pairs) == pytest.approx(_brute_force(cost))


def test_assign_beats_greedy_and_drops_gated_pairs() -> None:
    # greedy takes (0, 0) at 0.1 and leaves row 1 with 0.9; the optimum pairs crosswise at 0.2 + 0.2
    assert assign(np.array([[0.1, 0.2], [0.2, 0.9]])) == [(0, 1), (1, 0)]
    assert assign(np.array([[0.1, 1e6], [1e6, 1e6]])) == [(0, 0)]
    assert assign(np.zeros((0, 3))) == []


@pytest.mark.parametrize(("call", "message"), [
    (lambda c: c.update(seq=0, ts=1.0, width=W, height=H, detections=_dets([_box(1, 1)]),
                        embeddings=np.zeros((2, 128), np.float32)), "expected shape (1, N), got (2, 128)"),
    (lambda c: c.update(seq=0, ts=float("nan"), width=W, height=H, detections=_dets([])), "expected a finite ts"),
    (lambda c: c.record_embedding("nope", embedding=np.ones(4, np.float32), score=0.5),
     "expected a live track id, got 'nope'"),
    (lambda c: assign(np.zeros(3)), "expected a 2-d matrix, got shape (3,)"),
    (lambda c: Detections(boxes=np.zeros((2, 4), np.float32), scores=np.zeros(3, np.float32),
                          landmarks=np.zeros((2, 5, 2), np.float32)), "expected shape (2), got (3,)"),
])
def test_mismatched_input_raises_input_error(call: Callable[[CameraTracker], object], message: str) -> None:
    with pytest.raises(InputError) as e:
        call(CameraTracker(CAM))
    assert message in str(e.value)


def test_config_is_validated() -> None:
    with pytest.raises(ConfigError, match="min_hits: expected >= 1, got 0"):
        TrackerConfig(min_hits=0)
