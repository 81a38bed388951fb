"""Motion gating in ingest: a frame in which nothing moved is neither encoded, published nor decoded.

Why here and not in inference: ingest already holds every sampled frame decoded (the reader's BGR array), so the
gate (:class:`argus.motion.MotionDetector`, ~1 ms per 720p frame on a 100-px-high grey copy) costs no extra decode,
and a still frame that it drops saves the JPEG encode (~9 ms at 720p), its ~100 KB on the bus (broker disk and
network, per replica) and inference's decode (~8 ms) besides the detector. Gating in inference would save only the
detector, after paying for the rest. The price: ingest decides alone, without the tracker; so each published
frame says where it moved (``FrameV2.motion``) and whether it is a keyframe, and inference adds its open tracks'
boxes to the motion regions (argus.motion.detection_regions).

A still scene is not ignored: every ``ARGUS_MOTION_KEYFRAME_S`` of capture time a frame goes out as a keyframe
(full-frame detection) whatever the motion — the background absorbs a person who stands still after a few
seconds, and the keyframe still finds their face. The first frame of a camera, the frame after a camera reset
(size change, clock jump) and a global light change (most of the frame changed at once: the background is reset)
are keyframes too.

:func:`decide` is the pure rule from a motion result to what ingest does; :class:`CameraGates` holds one motion
detector per camera (with the camera's ``motion_mask`` from the registry).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from argus.cameras import Camera
from argus.motion import Box, MotionConfig, MotionDetector, MotionResult
from argus.schemas import MAX_MOTION_REGIONS

__all__ = ["SKIP_REASONS", "CameraGates", "GateDecision", "decide"]

SkipReason = Literal["no_motion"]
#: Why a frame was not published: the only label values of ``argus_ingest_frames_skipped_total{reason}``.
SKIP_REASONS: tuple[SkipReason, ...] = ("no_motion",)


@dataclass(frozen=True, kw_only=True)
class GateDecision:
    """What ingest does with one frame: publish it (as a keyframe or with its motion regions) or skip it."""

    publish: bool
    keyframe: bool  # inference detects on the whole frame
    gate: str  # FrameV2.gate: why it was published ("ungated" when gating is off); the skip reason otherwise
    motion: tuple[Box, ...] = ()  # where it moved, frame pixels (only on a non-keyframe)
    skip: SkipReason | None = None


UNGATED = GateDecision(publish=True, keyframe=True, gate="ungated")


def decide(result: MotionResult, *, max_regions: int = MAX_MOTION_REGIONS) -> GateDecision:
    """The gate's rule: no motion → skip; a full-frame reason → keyframe; motion → its boxes, or a keyframe when
    there are more boxes than a frame message carries (so much moved that the whole frame is the region)."""
    if result.reason == "no_motion":
        return GateDecision(publish=False, keyframe=False, gate="no_motion", skip="no_motion")
    if result.full_frame:
        return GateDecision(publish=True, keyframe=True, gate=result.reason)
    if not result.boxes or len(result.boxes) > max_regions:
        return GateDecision(publish=True, keyframe=True, gate="motion")
    return GateDecision(publish=True, keyframe=False, gate="motion", motion=result.boxes)


class CameraGates:
    """One motion detector per camera, made on the camera's first frame; ``enabled=False`` publishes everything.

    Not thread-safe: ingest's publishing loop is its only caller (the readers only fill queues).
    """

    def __init__(self, cameras: Iterable[Camera], *, enabled: bool, keyframe_s: float,
                 config: MotionConfig | None = None) -> None:
        self.enabled = enabled
        base = config or MotionConfig()
        self._default = replace(base, full_frame_every_s=keyframe_s)
        self._configs = {c.id: replace(self._default, mask=c.motion_mask) for c in cameras}
        self._detectors: dict[str, MotionDetector] = {}

    def gate(self, camera_id: str, image: np.ndarray, ts: float) -> GateDecision:
        if not self.enabled:
            return UNGATED
        det = self._detectors.get(camera_id)
        if det is None:
            det = self._detectors[camera_id] = MotionDetector(self._configs.get(camera_id, self._default))
        return decide(det.update(image, ts))
