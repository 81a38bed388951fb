"""A track's emotion is smoothed along it: fewer label flips than per frame, and real changes still come through."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from argus.config import load_settings
from argus.ecrl import TYPICAL_NEUTRAL, Features
from argus.ecrl import Path as P
from argus.emotion_track import ALPHA, EmotionTrack, label_flips, smooth, track_decision
from argus.errors import InputError
from argus.evaluation import sample_frames
from argus.faces.types import EMOTIONS
from argus.runtime.resources import Resources
from argus.tracking import face_score

ASSETS = Path(__file__).resolve().parents[2] / "assets"
HAPPY = np.eye(7)[EMOTIONS.index("happy")]
SAD = np.eye(7)[EMOTIONS.index("sad")]


@pytest.mark.parametrize(("prev", "probs", "weight", "expected"), [
    (None, SAD, 0.5, SAD),  # the first face is the estimate
    (SAD, HAPPY, 1.0, (1 - ALPHA) * SAD + ALPHA * HAPPY),  # a perfect face moves it by ALPHA
    (SAD, HAPPY, 0.5, (1 - ALPHA / 2) * SAD + ALPHA / 2 * HAPPY),  # a poor face moves it less
    (SAD, HAPPY, 0.0, (1 - ALPHA * 0.05) * SAD + ALPHA * 0.05 * HAPPY),  # but always a little
])
def test_the_estimate_is_a_quality_weighted_exponential_average(prev, probs, weight, expected):
    np.testing.assert_allclose(smooth(prev, probs, weight), expected, atol=1e-12)


def test_one_blinked_frame_does_not_change_the_tracks_emotion_but_a_lasting_one_does():
    t = EmotionTrack()
    for i, p in enumerate([HAPPY] * 5 + [SAD] + [HAPPY] * 3):
        t.add(seq=i, ts=i * 0.2, probs=p, weight=1.0)
    assert t.label == "happy" and [c.label for c in t.timeline] == ["happy"]
    for i in range(9, 15):
        t.add(seq=i, ts=i * 0.2, probs=SAD, weight=1.0)
    assert t.label == "sad" and [c.label for c in t.timeline] == ["happy", "sad"]


# Faces whose absolute features make the rules say each checked emotion (or nothing) against TYPICAL_NEUTRAL.
_T = TYPICAL_NEUTRAL
RULES_FACE = {
    "fear": Features(brow_height=_T.brow_height + 0.03, brow_width=_T.brow_width - 0.05,
                     mouth_curvature=_T.mouth_curvature),
    "angry": Features(brow_height=_T.brow_height - 0.03, brow_width=_T.brow_width - 0.05,
                      mouth_curvature=_T.mouth_curvature),
    "disgust": Features(brow_height=_T.brow_height, brow_width=_T.brow_width - 0.05,
                        mouth_curvature=_T.mouth_curvature - 0.1),
    "sad": Features(brow_height=_T.brow_height, brow_width=_T.brow_width, mouth_curvature=_T.mouth_curvature - 0.1),
    None: _T,
}
CHECKED = ("angry", "fear", "disgust", "sad")


def _expected(cnn: str, rules: str | None) -> tuple[str, P]:
    """Paper 002's strategy written out independently of argus.ecrl.decide."""
    if cnn not in CHECKED:
        return cnn, P.cnn
    if rules == cnn:
        return cnn, P.confirmed
    if rules is not None and "disgust" in (cnn, rules):
        return rules, P.rules
    return cnn, P.cnn_kept


TABLE = [(cnn, rules, *_expected(cnn, rules)) for cnn in EMOTIONS for rules in RULES_FACE]


def test_the_table_covers_every_cnn_label_and_rules_verdict():
    assert len(TABLE) == len(EMOTIONS) * 5
    assert ("disgust", "sad", "sad", P.rules) in TABLE and ("sad", "disgust", "disgust", P.rules) in TABLE
    assert ("angry", "fear", "angry", P.cnn_kept) in TABLE and ("happy", "sad", "happy", P.cnn) in TABLE


@pytest.mark.parametrize(("cnn", "rules", "label", "path"), TABLE)
def test_the_tracks_label_is_the_smoothed_cnn_label_through_paper_002s_decision(cnn, rules, label, path):
    v = track_decision(cnn, RULES_FACE[rules], None)  # no baseline: against TYPICAL_NEUTRAL
    assert (v.label, v.path) == (label, path)


@pytest.mark.parametrize(("cnn", "rules", "label", "path"), TABLE)
def test_with_a_baseline_the_rules_judge_the_change_from_the_persons_own_neutral_face(cnn, rules, label, path):
    # a person whose neutral brows sit high and mouth curves up: every feature shifted by the same offset
    shift = Features(brow_height=0.02, brow_width=0.03, mouth_curvature=0.05)
    base = Features(brow_height=_T.brow_height + shift.brow_height, brow_width=_T.brow_width + shift.brow_width,
                    mouth_curvature=_T.mouth_curvature + shift.mouth_curvature)
    f = RULES_FACE[rules]
    face = Features(brow_height=f.brow_height + shift.brow_height, brow_width=f.brow_width + shift.brow_width,
                    mouth_curvature=f.mouth_curvature + shift.mouth_curvature)
    v = track_decision(cnn, face, base)
    assert (v.label, v.path) == (label, path)


def test_the_baseline_changes_the_verdict_the_same_face_gets():
    # corners 0.1 mouth widths lower than typical: sad against the typical face, nothing against a person whose
    # neutral mouth is just as low
    low = RULES_FACE["sad"]
    assert track_decision("sad", low, None).path is P.confirmed
    assert track_decision("sad", low, low).path is P.cnn_kept
    assert track_decision("disgust", low, None).label == "sad"
    assert track_decision("disgust", low, low).label == "disgust"


@pytest.mark.parametrize("cnn", EMOTIONS)
def test_without_features_or_with_rules_off_the_cnns_label_stands(cnn):
    for v in (track_decision(cnn, None, None), track_decision(cnn, RULES_FACE["sad"], None, rules=False)):
        assert v.label == cnn and v.path is (P.cnn_kept if cnn in CHECKED else P.cnn)


def test_the_track_keeps_the_neutral_baseline_of_the_faces_the_cnn_calls_neutral():
    neutral = np.eye(7)[EMOTIONS.index("neutral")]
    t = EmotionTrack()
    a = Features(brow_height=0.10, brow_width=0.60, mouth_curvature=0.02)
    b = Features(brow_height=0.12, brow_width=0.64, mouth_curvature=0.04)
    t.add(seq=0, ts=0.0, probs=neutral, weight=1.0, features=a)
    t.add(seq=1, ts=0.2, probs=SAD, weight=1.0, features=RULES_FACE["sad"])  # not neutral: not in the baseline
    t.add(seq=2, ts=0.4, probs=neutral, weight=1.0, features=b)
    t.add(seq=3, ts=0.6, probs=neutral, weight=1.0)  # no features: nothing to add
    base = t.baseline
    assert base is not None and t.neutral_faces == 2
    assert (base.brow_height, base.brow_width, base.mouth_curvature) == pytest.approx((0.11, 0.62, 0.03))


def test_the_timeline_records_changes_of_the_final_label_with_their_path():
    t = EmotionTrack()
    disgust = np.eye(7)[EMOTIONS.index("disgust")]
    for i in range(3):  # the CNN says disgust, the geometry says sad: the rules win
        t.add(seq=i, ts=i * 0.2, probs=disgust, weight=1.0, features=RULES_FACE["sad"])
    assert (t.cnn_label, t.label, t.path) == ("disgust", "sad", P.rules)
    t.add(seq=3, ts=0.6, probs=disgust, weight=1.0, features=RULES_FACE["disgust"])  # now they agree
    assert (t.label, t.path) == ("disgust", P.confirmed)
    assert [(c.label, c.path) for c in t.timeline] == [("sad", P.rules), ("disgust", P.confirmed)]
    assert t.timeline[0].confidence == 0.0  # the smoothed probability of the *final* label (sad) at that frame


def test_with_rules_off_the_track_is_the_smoothed_cnn_alone():
    t = EmotionTrack(rules=False)
    disgust = np.eye(7)[EMOTIONS.index("disgust")]
    t.add(seq=0, ts=0.0, probs=disgust, weight=1.0, features=RULES_FACE["sad"])
    assert (t.label, t.path) == ("disgust", P.cnn_kept)


@pytest.mark.parametrize("bad", [np.zeros(7), np.full(7, np.nan), np.ones(6), -np.ones(7)])
def test_probabilities_that_are_not_probabilities_are_refused(bad):
    with pytest.raises(InputError, match="emotion"):
        smooth(None, bad, 1.0)


def test_on_the_pexels_clip_the_track_moves_from_crying_to_happy_with_fewer_flips_than_per_frame():
    res = Resources(load_settings(ort_threads=1))
    per_frame: list[str] = []
    smoothed: list[str] = []
    track = EmotionTrack()
    for i, (_, frame) in enumerate(sample_frames(ASSETS / "pyfeat" / "WolfgangLanger_Pexels.mp4", 99)):  # 5 fps
        face = max(res.pipeline.process([frame])[0], key=lambda f: f.det_score)
        per_frame.append(EMOTIONS[int(np.argmax(face.emotion))])
        track.add(seq=i, ts=i * 0.2, probs=face.emotion,
                  weight=face_score(quality=face.quality, landmarks=face.landmarks, det_score=face.det_score))
        smoothed.append(track.label)
    negative = {"sad", "fear", "angry", "disgust"}
    assert negative & set(smoothed[:25]), smoothed[:25]  # crying first
    assert set(smoothed[-40:]) == {"happy"}  # laughing at the end
    # the track's emotion (what the alert carries) moves from a negative class to happy, as its timeline says
    labels = [c.label for c in track.timeline]
    assert labels[-1] == "happy" and track.label == "happy"
    assert negative & set(labels[:-1]), labels
    assert label_flips(smoothed) < label_flips(per_frame), (label_flips(smoothed), label_flips(per_frame))
    assert len(track.timeline) == label_flips(smoothed) + 1
