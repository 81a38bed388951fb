"""`argus demo` as a newcomer runs it: real clips, real models, all four stages in one process."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], dict]:
    data = tmp_path_factory.mktemp("demo")
    argus = Path(sys.executable).parent / "argus"
    proc = subprocess.run([str(argus), "demo", "--data-dir", str(data)], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, json.loads(proc.stdout.strip().splitlines()[-1])


def test_demo_exits_zero_and_ends_with_a_json_summary(demo):
    proc, out = demo
    assert {"frames", "faces", "matches", "alerts"} <= set(out)
    assert out["bus"] == "memory" and out["backend"] == "onnxruntime" and out["store"] == "sqlite"
    assert "ALERT pyfeat-man seen at North gate" in proc.stdout


def test_every_sampled_frame_of_the_three_clips_went_through(demo):
    _, out = demo
    # 5 fps samples of 6.40 s + 6.38 s + 19.69 s clips: 32 + 32 + 99 frames (media-time sampling is exact)
    assert out["frames"] == 163
    assert out["dead_letters"] == 0


def test_the_enrolled_man_raises_one_alert_per_camera_that_shows_him_with_its_location(demo):
    _, out = demo
    cams = tomllib.loads((ROOT / "assets/demo/cameras.toml").read_text())["camera"]
    where = {c["id"]: c["location"] for c in cams}
    alerts = out["alerts"]
    assert sorted(a["camera_id"] for a in alerts) == ["market-square", "north-gate"]
    for a in alerts:
        assert a["person_id"] == "pyfeat-man"
        loc = where[a["camera_id"]]
        assert a["location"] == {k: loc[k] for k in ("lat", "lon", "address", "zone")}
        assert a["score"] >= a["threshold"] and a["runner_up"] in {"obama", "biden"}
        assert a["emotion"] in {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"}


def test_no_alert_for_the_woman_who_is_not_enrolled(demo):
    _, out = demo
    assert not [a for a in out["alerts"] if a["camera_id"] == "station-hall"]


def test_each_visit_is_one_track_with_one_decision_and_one_alert(demo):
    _, out = demo
    assert out["faces_embedded"] < out["faces"]  # the tracker spends the embedder on the best faces only
    assert out["matches"] == len(out["alerts"])  # one verdict per visit, no per-frame matches
    assert out["events"] == out["matches"]  # every published verdict is in the history
    for a in out["alerts"]:
        assert a["revision"] == 1 and a["track_id"].startswith(a["camera_id"] + ":")
        assert a["faces_supporting"] >= 2  # never one lucky frame
    pairs = [(a["person_id"], a["camera_id"]) for a in out["alerts"]]
    assert len(pairs) == len(set(pairs))
