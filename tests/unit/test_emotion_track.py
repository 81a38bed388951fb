"""A track's emotion is smoothed along it: fewer label flips than per frame, and real changes still come through."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from argus.config import load_settings
from argus.emotion_track import ALPHA, EmotionTrack, label_flips, smooth
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
    assert label_flips(smoothed) < label_flips(per_frame), (label_flips(smoothed), label_flips(per_frame))
    assert len(track.timeline) == label_flips(smoothed) + 1
