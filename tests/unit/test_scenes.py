"""The synthetic scene generator: reproducible from its seed, truth that matches the pixels, presets that keep
their promises, and an ingest FrameSource that ends like a file does."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from argus.errors import ConfigError, SourceError
from argus.imaging import read_image
from argus.ingest.reader import CameraReader, ReaderState
from argus.ingest.sources import CapturedFrame, FrameSource
from argus.scenes import (
    PRESETS,
    FaceBank,
    Lighting,
    Person,
    Prop,
    Scene,
    approach,
    background_motion,
    build_face_bank,
    crossings,
    crowd,
    dark_noisy,
    default_bank,
    listed_pass_once,
    listed_visits_twice,
    long_empty,
    pick_watchlist,
    sunglasses,
)
from argus.scenes.__main__ import main as scenes_cli

SMALL = (320, 180)
REPO = Path(__file__).resolve().parents[2]
ASSETS = REPO / "assets"


@pytest.fixture(scope="module")
def bank() -> FaceBank:
    return default_bank()


def _one_person(bank: FaceBank, **kw: object) -> Scene:
    ident = bank.multi_photo()[0]
    person = Person(identity=ident, t0=0.0, t1=2.0, x0=0.2, x1=0.8, size0=60, size1=70,
                    body=bool(kw.pop("body", True)))
    args: dict = {"name": "one", "seed": 5, "bank": bank, "width": 640, "height": 360, "fps": 5.0,
                  "duration": 2.0, "people": (person,), "lighting": Lighting(noise=0.0), **kw}
    return Scene(**args)


# ------------------------------------------------------------------------------------------------- bank

def test_bank_patches_carry_a_face_box_and_landmarks_inside_the_crop(bank: FaceBank) -> None:
    assert len(bank) >= 15
    assert {"obama", "pyfeat_man"} <= set(bank.multi_photo())
    for ident in bank.identities:
        for p in bank.of(ident):
            h, w = p.image.shape[:2]
            assert p.image.dtype == np.uint8 and p.image.shape[2] == 3
            x1, y1, x2, y2 = p.box
            assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
            assert np.all((p.landmarks >= 0) & (p.landmarks <= [w, h]))
            assert p.landmarks[0, 0] < p.landmarks[1, 0]  # left eye left of right eye
            assert p.identity == ident and p.score >= 0.95


def test_bank_uses_identities_json_when_present_and_fallback_stills_otherwise(tmp_path: Path) -> None:
    from argus.config import load_settings
    from argus.runtime.resources import Resources

    detect = Resources(load_settings()).pipeline.detect
    (tmp_path / "faces").mkdir()
    (tmp_path / "pyfeat").mkdir()
    shutil.copy(ASSETS / "faces/astronaut.png", tmp_path / "faces/astronaut.png")
    shutil.copy(ASSETS / "pyfeat/45-m7-di-ph.jpg", tmp_path / "pyfeat/45-m7-di-ph.jpg")
    without = build_face_bank(assets=tmp_path, detect=detect)
    assert without.identities == ("astronaut", "pyfeat_m7")  # the fallback still, under its fallback name
    (tmp_path / "strangers").mkdir()
    det = detect(read_image(str(tmp_path / "pyfeat/45-m7-di-ph.jpg")))
    box = [round(float(v)) for v in det.boxes[0]]
    index = {"about": "test", "faces": [{"identity": "someone", "file": "pyfeat/45-m7-di-ph.jpg", "box": box}],
             "left_out": []}
    (tmp_path / "strangers/identities.json").write_text(json.dumps(index))
    with_index = build_face_bank(assets=tmp_path, detect=detect)
    assert with_index.identities == ("astronaut", "someone")
    assert with_index.fingerprint != without.fingerprint


# ------------------------------------------------------------------------------------------ determinism

def test_same_seed_gives_byte_identical_frames_and_truth(bank: FaceBank) -> None:
    a, b = crowd(bank, seed=7, size=SMALL), crowd(bank, seed=7, size=SMALL)
    assert a.truth_json() == b.truth_json()
    for i in (0, a.n_frames // 3, a.n_frames // 2, a.n_frames - 1):
        ia, ta = a.render(i)
        ib, tb = b.render(i)
        assert ia.tobytes() == ib.tobytes() and ta == tb
    seq = {i: img for i, _, img, _ in a.frames(stop=4)}
    assert all(seq[i].tobytes() == b.render(i)[0].tobytes() for i in seq)  # random access == sequential


def test_a_different_seed_gives_a_different_scene(bank: FaceBank) -> None:
    a, b = crowd(bank, seed=7, size=SMALL), crowd(bank, seed=8, size=SMALL)
    assert a.truth_json() != b.truth_json()
    assert a.render(5)[0].tobytes() != b.render(5)[0].tobytes()


# ------------------------------------------------------------------------------------------------ truth

def test_truth_boxes_lie_inside_the_frame(bank: FaceBank) -> None:
    for fn in (crowd, crossings, listed_pass_once):
        s = fn(bank, seed=2, size=SMALL)
        n = 0
        for t in s.truths():
            for f in t.faces:
                x1, y1, x2, y2 = f.box
                assert 0 <= x1 < x2 <= s.width and 0 <= y1 < y2 <= s.height, (s.name, t.index, f)
                assert 0 <= f.visible <= 1 and f.occluded == (f.visible < 0.05)
                n += 1
        assert n > 0


def test_truth_box_is_where_the_face_was_pasted(bank: FaceBank) -> None:
    scene = _one_person(bank, body=False)
    empty = Scene(name="empty", seed=5, bank=bank, width=640, height=360, fps=5.0, duration=2.0,
                  lighting=Lighting(noise=0.0))
    for i in (2, 5, 8):
        img, truth = scene.render(i)
        bg, none = empty.render(i)
        assert none.faces == () and len(truth.faces) == 1
        diff = np.abs(img.astype(int) - bg.astype(int)).max(axis=2) > 3
        ys, xs = np.nonzero(diff)
        x1, y1, x2, y2 = truth.faces[0].box
        # everything that changed is the pasted face, and the truth box sits inside it, near its centre
        assert xs.min() <= x1 + 2 and xs.max() >= x2 - 2 and ys.min() <= y1 + 2 and ys.max() >= y2 - 2
        assert (xs.max() - xs.min()) * (ys.max() - ys.min()) < 4 * (x2 - x1) * (y2 - y1)
        assert abs((xs.min() + xs.max()) / 2 - (x1 + x2) / 2) < 0.15 * (x2 - x1)
        inside = np.abs(img.astype(int) - bg.astype(int))[round(y1):round(y2), round(x1):round(x2)].mean()
        assert inside > 15


def test_visits_span_exactly_the_frames_where_the_face_is_in_truth(bank: FaceBank) -> None:
    s = crossings(bank, seed=4, size=SMALL)
    seen: dict[str, list[int]] = {}
    for t in s.truths():
        for f in t.faces:
            seen.setdefault(f.visit_id, []).append(t.index)
    assert {v.visit_id for v in s.visits} == set(seen)
    for v in s.visits:
        assert (v.first_frame, v.last_frame) == (min(seen[v.visit_id]), max(seen[v.visit_id]))
        assert v.first_ts == s.ts(v.first_frame) and v.last_ts == s.ts(v.last_frame)


# ---------------------------------------------------------------------------------------------- presets

def test_listed_person_passes_once_briefly(bank: FaceBank) -> None:
    s = listed_pass_once(bank, seed=3)
    (subj,) = s.subjects
    visits = [v for v in s.visits if v.identity == subj]
    assert len(visits) == 1 and visits[0].last_ts - visits[0].first_ts < 8.0
    assert len(s.identities) >= 3


def test_listed_person_visits_twice_more_than_a_minute_apart(bank: FaceBank) -> None:
    for seed in (0, 1):
        s = listed_visits_twice(bank, seed=seed, size=SMALL)
        (subj,) = s.subjects
        first, second = (v for v in s.visits if v.identity == subj)
        assert (first.visit_id, second.visit_id) == (f"{subj}#1", f"{subj}#2")
        assert second.first_ts - first.last_ts > 60.0
        between = [v for v in s.visits if first.last_ts < v.first_ts < second.first_ts]
        assert between and all(v.identity != subj for v in between)


def test_crowd_has_many_distinct_strangers_at_once_with_faces_32_to_140_px(bank: FaceBank) -> None:
    s = crowd(bank, seed=1)
    assert len(s.visits) == 20 and len(s.identities) >= 15 and s.subjects == ()
    truths = list(s.truths())
    assert max(len(t.faces) for t in truths) >= 6
    sizes = [f.size for t in truths for f in t.faces]
    assert min(sizes) >= 32 - 0.5 and max(sizes) <= 140 + 0.5
    listed = set(s.identities[:3])
    assert not listed & set(crowd(bank, seed=1, exclude=listed).identities)


def test_crowd_reuses_an_identity_only_after_its_previous_visit(bank: FaceBank) -> None:
    small = FaceBank(patches={k: bank.of(k) for k in bank.identities[:5]})
    s = crowd(small, seed=2, size=SMALL)  # 20 people, 5 identities: Scene validation refuses overlapping visits
    assert len(s.identities) == 5 and len(s.people) == 20


def test_approach_spans_faces_from_24_to_200_px(bank: FaceBank) -> None:
    s = approach(bank, seed=0)
    sizes = [f.size for t in s.truths() for f in t.faces if f.visible > 0.99]
    assert min(sizes) < 27 and max(sizes) > 180 and len(s.visits) == 3


def test_crossings_hide_faces_partly_and_fully(bank: FaceBank) -> None:
    s = crossings(bank, seed=0)
    faces = [f for t in s.truths() for f in t.faces]
    partial = [f for f in faces if 0.1 < f.visible < 0.9 and f.box[0] > 0 and f.box[2] < s.width]
    assert partial and any(f.occluded for f in faces)
    assert any(p.front and p.kind == "van" for p in s.props)


def test_sunglasses_are_flagged_and_dark_over_the_eyes(bank: FaceBank) -> None:
    s = sunglasses(bank, seed=0)
    (subj,) = s.subjects
    assert all(v.sunglasses for v in s.visits if v.identity == subj)
    flags = {f.sunglasses for t in s.truths() for f in t.faces}
    assert flags == {True, False}
    k = next(i for i, p in enumerate(s.people) if p.sunglasses)
    patch, img, _ = s._patches[k]
    for x, y in patch.landmarks[:2]:
        assert img[round(y) - 1:round(y) + 2, round(x) - 1:round(x) + 2].mean() < 60


def test_long_empty_has_minutes_without_a_face(bank: FaceBank) -> None:
    s = long_empty(bank, seed=0, size=SMALL)
    has = [bool(t.faces) for t in s.truths()]
    longest = run = 0
    for h in has:
        run = 0 if h else run + 1
        longest = max(longest, run)
    assert longest / s.fps >= 50 and has.count(False) / len(has) >= 0.8 and any(has)


def test_background_motion_moves_but_has_no_face(bank: FaceBank) -> None:
    s = background_motion(bank, seed=0, size=SMALL)
    assert s.people == () and all(t.faces == () for t in s.truths())
    a, b = s.render(10)[0].astype(int), s.render(15)[0].astype(int)
    assert (np.abs(a - b).max(axis=2) > 40).mean() > 0.01  # cars and trees moved, not just noise


def test_dark_noisy_scene_is_dark_and_noisy(bank: FaceBank) -> None:
    s = dark_noisy(bank, seed=0, size=SMALL)
    img = s.render(s.n_frames // 2)[0]
    assert cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).mean() < 50
    a, b = s.render(0)[0].astype(int), s.render(1)[0].astype(int)
    assert np.abs(a - b)[: s.height // 3].std() > 5  # frame-to-frame sensor noise on the (static) buildings


def test_every_preset_builds_at_both_resolutions(bank: FaceBank) -> None:
    for name, fn in PRESETS.items():
        for size in ((1280, 720), (1920, 1080)):
            s = fn(bank, seed=0, size=size)
            assert (s.width, s.height) == size and s.n_frames > 0, name
            assert set(s.subjects) <= set(s.identities)


# ------------------------------------------------------------------------------------------- adapters

def test_scene_source_is_a_frame_source_that_ends_with_none(bank: FaceBank) -> None:
    scene = _one_person(bank)
    src = scene.as_source("cam-9")
    assert isinstance(src, FrameSource) and src.camera_id == "cam-9"
    with pytest.raises(SourceError):
        src.read()
    src.open()
    got: list[CapturedFrame] = []
    while (f := src.read()) is not None:
        got.append(f)
    assert [f.seq for f in got] == list(range(scene.n_frames))
    assert [f.ts for f in got] == [scene.ts(i) for i in range(scene.n_frames)]
    assert got[3].image.tobytes() == scene.render(3)[0].tobytes() and src.truth(3) == scene.truth(3)
    src.close()
    src.open()
    assert src.read() is None  # a finished stream stays finished across a reconnect


def test_the_real_ingest_reader_reads_a_scene_to_its_end(bank: FaceBank) -> None:
    scene = _one_person(bank)
    reader = CameraReader(scene.as_source("cam-1"), queue_size=scene.n_frames + 1).start()
    assert reader.join(20)
    st = reader.stats()
    assert st.state is ReaderState.ended and st.frames_read == scene.n_frames and st.read_errors == 0
    frames = reader.queue.drain()
    assert [f.seq for f in frames] == list(range(scene.n_frames)) and frames[0].camera_id == "cam-1"


def test_watchlist_enrolls_from_photos_the_scene_never_shows(bank: FaceBank, tmp_path: Path) -> None:
    s = listed_pass_once(bank, seed=0, subject="obama")
    w = pick_watchlist(s, 3, seed=1)
    assert w.identities[0] == "obama" and not set(w.identities[1:]) & set(s.identities)
    shown = {bank.of(p.identity)[p.patch].photo for p in s.people if p.identity == "obama"}
    assert w.enrollment["obama"] and not {p.photo for p in w.enrollment["obama"]} & shown
    assert "obama" not in w.scene_photo_reused
    paths = w.write_photos(tmp_path)
    assert all(p.is_file() and cv2.imread(str(p)) is not None for ps in paths.values() for p in ps)


def test_write_mp4_and_cli(bank: FaceBank, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scene = _one_person(bank)
    path = scene.write_mp4(tmp_path / "one.mp4")
    cap = cv2.VideoCapture(str(path))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == scene.n_frames
    cap.release()
    assert scenes_cli(["--scenario", "sunglasses", "--out", str(tmp_path / "cli"), "--no-video"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["scenario"] == "sunglasses"
    truth = json.loads((tmp_path / "cli/sunglasses.truth.json").read_text())
    assert len(truth["frames"]) == truth["n_frames"] and truth["visits"]
    assert cv2.imread(str(tmp_path / "cli/sunglasses.contact.png")) is not None


def test_invalid_specs_are_refused_with_what_was_expected(bank: FaceBank) -> None:
    ident = bank.identities[0]
    p1 = Person(identity=ident, t0=0.0, t1=3.0, x0=0.0, x1=1.0, size0=50, size1=50)
    p2 = Person(identity=ident, t0=2.0, t1=4.0, x0=0.0, x1=1.0, size0=50, size1=50)
    with pytest.raises(ConfigError, match="do not overlap"):
        Scene(name="x", seed=0, bank=bank, duration=5.0, people=(p1, p2))
    with pytest.raises(ConfigError, match="patch: expected"):
        Scene(name="x", seed=0, bank=bank, duration=5.0,
              people=(Person(identity=ident, patch=99, t0=0, t1=1, x0=0, x1=1, size0=50, size1=50),))
    with pytest.raises(ConfigError, match="expected t1 > t0"):
        Prop(kind="car", x0=0, t0=2, t1=1, bottom=0.7, width=100, height=40)
    with pytest.raises(ConfigError, match="subject"):
        Scene(name="x", seed=0, bank=bank, duration=5.0, people=(p1,), subjects=("nobody",))
