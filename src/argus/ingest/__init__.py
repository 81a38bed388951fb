"""Ingest: turn camera streams into sampled, sequenced frames without ever blocking on a slow consumer."""

from argus.ingest.queue import DropOldestQueue
from argus.ingest.reader import CameraReader, ReaderGroup, ReaderState, ReaderStats
from argus.ingest.sources import CapturedFrame, FrameSource, MemorySource, OpenCVSource, source_for_camera
from argus.retry import Backoff

__all__ = [
    "Backoff",
    "CameraReader",
    "CapturedFrame",
    "DropOldestQueue",
    "FrameSource",
    "MemorySource",
    "OpenCVSource",
    "ReaderGroup",
    "ReaderState",
    "ReaderStats",
    "source_for_camera",
]
