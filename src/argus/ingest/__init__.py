"""Ingest: turn camera streams into sampled, sequenced frames without ever blocking on a slow consumer."""

from argus.ingest.health import CameraHealthRecorder, health_doc
from argus.ingest.queue import DropOldestQueue
from argus.ingest.reader import CameraReader, ReaderGroup, ReaderState, ReaderStats
from argus.ingest.sources import CapturedFrame, FrameSource, MemorySource, OpenCVSource, source_for_camera
from argus.retry import Backoff

__all__ = [
    "Backoff",
    "CameraHealthRecorder",
    "CameraReader",
    "CapturedFrame",
    "DropOldestQueue",
    "FrameSource",
    "MemorySource",
    "OpenCVSource",
    "ReaderGroup",
    "ReaderState",
    "ReaderStats",
    "health_doc",
    "source_for_camera",
]
