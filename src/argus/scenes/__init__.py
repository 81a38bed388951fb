"""Deterministic synthetic street scenes with real faces and per-frame ground truth.

Why: the tracker and the false-alert rate ("no stranger named as a listed person") need many minutes of camera-like
video in which it is known, frame by frame, who is where — with the hard cases on demand (crowds, occlusion,
sunglasses, darkness, long gaps). Every scene is a spec plus a seed; frames are generated lazily and are
byte-identical for the same (spec, seed, face bank).

    from argus.scenes import crowd, pick_watchlist
    scene = crowd(seed=3)
    for index, ts, image, truth in scene.frames(): ...
    source = scene.as_source("cam-1")          # an ingest FrameSource
    watch = pick_watchlist(scene, 3)            # who to enroll, from photos the scene never shows

``python -m argus.scenes --scenario crowd --out DIR`` writes a clip, its truth JSON and a contact sheet.
"""

from argus.scenes.background import Lighting
from argus.scenes.bank import FaceBank, FacePatch, build_face_bank, default_bank
from argus.scenes.presets import (
    FULL_HD,
    HD,
    PRESETS,
    approach,
    background_motion,
    crossings,
    crowd,
    dark_noisy,
    listed_pass_once,
    listed_visits_twice,
    long_empty,
    preset,
    sunglasses,
)
from argus.scenes.scene import (
    OCCLUDED_BELOW,
    FaceTruth,
    FrameTruth,
    Person,
    Prop,
    Scene,
    SceneSource,
    Visit,
    WatchList,
    pick_watchlist,
)

__all__ = [
    "FULL_HD",
    "HD",
    "OCCLUDED_BELOW",
    "PRESETS",
    "FaceBank",
    "FacePatch",
    "FaceTruth",
    "FrameTruth",
    "Lighting",
    "Person",
    "Prop",
    "Scene",
    "SceneSource",
    "Visit",
    "WatchList",
    "approach",
    "background_motion",
    "build_face_bank",
    "crossings",
    "crowd",
    "dark_noisy",
    "default_bank",
    "listed_pass_once",
    "listed_visits_twice",
    "long_empty",
    "pick_watchlist",
    "preset",
    "sunglasses",
]
