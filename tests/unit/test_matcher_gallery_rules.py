"""The matcher applies what the gallery says beyond who is enrolled: negative evidence, expiry and watch-list
thresholds — through the real MatcherProcessor over a real in-memory gallery, with synthetic embeddings."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from argus.bus.base import Record
from argus.config import load_settings
from argus.gallery.base import Person, WatchlistSpec
from argus.gallery.memory import MemoryGallery
from argus.metrics import StageMetrics
from argus.runtime.resources import Resources
from argus.runtime.runner import Item, Output
from argus.schemas import TOPIC_FACES, FacesV3, FaceV3, MatchesV3, Quality, embedding_bytes, encode
from argus_services.matcher.stage import MatcherProcessor

ASSETS = Path(__file__).resolve().parents[2] / "assets"
DIM = 128


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def _around(rng: np.random.Generator, center: np.ndarray, cos: float, n: int) -> np.ndarray:
    """n unit vectors at cosine ~``cos`` to ``center`` (noise sigma from cos = 1 / sqrt(1 + dim sigma^2))."""
    sigma = np.sqrt((1 / cos**2 - 1) / DIM)
    return _unit(center + sigma * rng.standard_normal((n, DIM)).astype(np.float32))


@pytest.fixture
def world(tmp_path: Path) -> tuple[MatcherProcessor, MemoryGallery, dict[str, np.ndarray]]:
    rng = np.random.default_rng(3)
    p = _unit(rng.standard_normal(DIM).astype(np.float32))
    lookalike = _around(rng, p, 0.9, 1)[0]  # someone else, at cosine ~0.9 to P: above the 0.8 threshold
    vectors = {
        "p": p,
        "lookalike": lookalike,
        "p_faces": _around(rng, p, 0.99, 3),  # P on camera
        "lookalike_faces": _around(rng, lookalike, 0.99, 3),  # the look-alike on camera
        "other": _unit(rng.standard_normal((1, DIM)).astype(np.float32)),
    }
    s = load_settings(data_dir=tmp_path, cameras_file=ASSETS / "demo" / "cameras.toml", metrics_port=0,
                      match_threshold=0.8)
    gallery = MemoryGallery(dim=DIM)
    gallery.enroll(Person(person_id="P-100", display_name="P"), p[None, :], actor="op", reason="test")
    gallery.enroll(Person(person_id="case/9:1", display_name="Other"), vectors["other"], actor="op", reason="test")
    res = Resources(s, registry=CollectorRegistry(), gallery=gallery)
    return MatcherProcessor(res, StageMetrics("matcher", registry=CollectorRegistry())), gallery, vectors


def _visit(matcher: MatcherProcessor, track: str, faces: np.ndarray) -> list[tuple[str, bool, str]]:
    """One track's faces, one per frame, through the matcher: the (person, matched, outcome) it publishes."""
    items = []
    t0 = time.time()
    for seq, emb in enumerate(faces):
        face = FaceV3(index=0, track_id=track, track_state="confirmed", face_score=0.8, box=(10, 10, 110, 110),
                      landmarks=tuple(float(i) for i in range(10)), det_score=0.99,
                      quality=Quality(size=100, blur=200), embedded=True, embedding=embedding_bytes(emb),
                      emotion=(1 / 7,) * 7, crop_jpeg=b"\xff\xd8\xff\xd9")
        msg = FacesV3(camera_id="north-gate", seq=seq, ts_capture=t0 + seq * 0.2, ts_infer=t0 + seq * 0.2,
                      frame_width=640, frame_height=480, detector="test", embedder="test", faces=(face,))
        items.append(Item(Record(topic=TOPIC_FACES, partition=0, offset=seq, key=msg.key(), value=encode(msg),
                                 timestamp_ms=0), msg))
    out = [o.message for o in matcher.process(items) if isinstance(o, Output)]
    return [(m.person_id, m.matched, m.outcome) for msg in out if isinstance(msg, MatchesV3) for m in msg.matches]


def test_a_lookalike_closer_to_the_persons_negative_evidence_is_not_named_while_the_person_still_is(world):
    matcher, gallery, v = world
    assert _visit(matcher, "t-before", v["lookalike_faces"]) == [("P-100", True, "matched")]  # the false alert
    gallery.add_negative("P-100", v["lookalike"][None, :], actor="ana", reason="not this person", ref="alert-1")
    assert _visit(matcher, "t-lookalike", v["lookalike_faces"]) == []
    assert _visit(matcher, "t-p", v["p_faces"]) == [("P-100", True, "matched")]


def test_an_expired_person_is_never_named_and_expiry_is_checked_against_the_clock_each_batch(world):
    matcher, gallery, v = world
    exp = time.time() + 3600
    gallery.update_person("P-100", expires_at=exp, actor="op", reason="order ends")
    assert "P-100" in matcher.listed(now=exp - 1)
    version = gallery.version
    assert "P-100" not in matcher.listed(now=exp) and gallery.version == version  # no gallery change needed
    assert "P-100" in matcher.listed(now=exp - 1)  # a clock stepped back is recomputed too
    gallery.update_person("P-100", expires_at=time.time() - 1, actor="op", reason="order ended")
    assert _visit(matcher, "t-expired", v["p_faces"]) == []
    gallery.update_person("P-100", expires_at=None, actor="op", reason="order renewed")
    assert _visit(matcher, "t-renewed", v["p_faces"]) == [("P-100", True, "matched")]


def test_a_watchlists_spec_threshold_overrides_the_configured_one_and_follows_gallery_changes(world):
    matcher, gallery, v = world
    gallery.set_watchlist(WatchlistSpec(name="default", threshold=0.999), actor="op", reason="stricter")
    assert _visit(matcher, "t-strict", v["p_faces"]) == []
    assert matcher.thresholds.for_watchlist("default") == 0.999
    gallery.set_watchlist(WatchlistSpec(name="default", threshold=None), actor="op", reason="back to the env")
    assert _visit(matcher, "t-env", v["p_faces"]) == [("P-100", True, "matched")]
    assert matcher.thresholds.for_watchlist("default") == 0.8
