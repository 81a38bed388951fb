"""Inference stage: JPEG frames in, faces (box, landmarks, quality, embedding, emotion, crop) out.

Frames from all cameras are micro-batched by the runner (``ARGUS_INFERENCE_BATCH_MAX`` / ``ARGUS_BATCH_WAIT_MS``) and go
through the models as one batch per model. A frame with no face produces no message (it is counted); a corrupt
JPEG is dead-lettered with its camera and sequence number and the rest of the batch goes on.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from argus.errors import InputError
from argus.imaging import decode_jpeg, encode_jpeg
from argus.metrics import StageMetrics
from argus.runtime.resources import Resources
from argus.runtime.runner import Item, Output, Reject, StageRunner
from argus.schemas import TOPIC_FACES, FacesV1, FaceV1, FrameV1, Quality, embedding_bytes
from argus.topology import INPUT_TOPICS, OUTPUT_TOPICS


class InferenceProcessor:
    stage = "inference"
    input_topic = INPUT_TOPICS["inference"]
    input_type = FrameV1
    output_topics: tuple[str, ...] = OUTPUT_TOPICS["inference"]

    def __init__(self, resources: Resources, metrics: StageMetrics) -> None:
        self.pipeline = resources.pipeline
        self.crop_quality = 90
        self.faces_total = metrics.counter("faces_total", "Faces found, by camera.", ("camera",))
        self.frames_total = metrics.counter(
            "frames_total", "Frames analysed, by camera and outcome (faces, no_face).", ("camera", "outcome"))
        self.model_seconds = metrics.histogram("batch_model_seconds", "Model time per micro-batch.")

    def process(self, items: Sequence[Item[FrameV1]]) -> list[Output | Reject]:
        out: list[Output | Reject] = []
        good: list[Item[FrameV1]] = []
        images: list[np.ndarray] = []
        for it in items:
            m = it.message
            try:
                img = decode_jpeg(m.jpeg, where=f"camera {m.camera_id!r} frame {m.seq}")
            except InputError as e:
                out.append(Reject(it, "corrupt_frame", e))
                continue
            good.append(it)
            images.append(img)
        if not images:
            return out
        t0 = time.perf_counter()
        per_frame = self.pipeline.process(images)
        self.model_seconds.observe(time.perf_counter() - t0)
        now = time.time()
        for it, faces in zip(good, per_frame, strict=True):
            m = it.message
            if not faces:
                self.frames_total.labels(m.camera_id, "no_face").inc()
                continue
            self.frames_total.labels(m.camera_id, "faces").inc()
            self.faces_total.labels(m.camera_id).inc(len(faces))
            wire = tuple(
                FaceV1(
                    index=i,
                    box=(float(f.box[0]), float(f.box[1]), float(f.box[2]), float(f.box[3])),
                    landmarks=tuple(float(v) for v in f.landmarks.reshape(-1)),
                    det_score=min(1.0, max(0.0, float(f.det_score))),
                    quality=Quality(size=float(f.quality.size), blur=float(f.quality.blur)),
                    embedding=embedding_bytes(f.embedding),
                    emotion=tuple(float(v) for v in f.emotion),
                    crop_jpeg=encode_jpeg(f.crop, quality=self.crop_quality),
                )
                for i, f in enumerate(faces)
            )
            out.append(Output(TOPIC_FACES, FacesV1(
                camera_id=m.camera_id, seq=m.seq, ts_capture=m.ts_capture, ts_infer=now,
                frame_width=m.width, frame_height=m.height, detector=self.pipeline.detector_name,
                embedder=self.pipeline.embedder_name, faces=wire,
            )))
        return out

    def close(self) -> None:
        pass


def build(resources: Resources) -> StageRunner[FrameV1]:
    metrics = StageMetrics("inference", registry=resources.registry)
    return StageRunner.for_stage(InferenceProcessor(resources, metrics), resources, metrics)
