"""Builds each I/O seam from Settings, once, so a stage never decides which implementation it talks to.

Server clients are imported lazily: the embedded demo never imports kafka-python, tritonclient or pymongo.
In the one-process demo all four stages share one Resources (one in-memory bus, one ONNX Runtime, one gallery).
Tests and benchmarks inject ready-made seams by name (``Resources(s, bus=MemoryBus(), sources=[...])``); a name
that is not a seam is refused, so a typo can never silently build the real thing. ``with Resources(...) as res:``
closes what was built.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import cached_property
from types import TracebackType
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry

from argus.config import BackendKind, BusKind, GalleryKind, Settings, StoreKind
from argus.errors import ConfigError

if TYPE_CHECKING:
    from argus.bus.base import Bus
    from argus.cameras import Camera, CameraRegistry
    from argus.faces.pipeline import FacePipeline
    from argus.gallery.base import Gallery
    from argus.gallery.replication import GalleryLog
    from argus.inference.backend import InferenceBackend
    from argus.ingest.sources import FrameSource
    from argus.store.base import EventStore

log = logging.getLogger(__name__)

#: Seams that may be injected instead of built from Settings.
SEAMS = ("bus", "backend", "pipeline", "gallery", "gallery_log", "store", "cameras", "sources")
#: Seams Resources closes (the ones holding connections, files or threads), gallery before its log.
_CLOSED = ("bus", "backend", "store", "gallery", "gallery_log")


class Resources:
    def __init__(self, settings: Settings, *, registry: CollectorRegistry | None = None, **injected: Any) -> None:
        unknown = sorted(set(injected) - set(SEAMS))
        if unknown:
            raise ConfigError(f"Resources: expected injected seams among {', '.join(SEAMS)}, got {', '.join(unknown)}")
        self.settings = settings
        self.registry = registry if registry is not None else CollectorRegistry()
        for name, value in injected.items():  # a cached_property reads the instance dict first
            self.__dict__[name] = value

    def __enter__(self) -> Resources:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @cached_property
    def bus(self) -> Bus:
        s = self.settings
        if s.bus is BusKind.kafka:
            from argus.bus.kafka import KafkaBus

            return KafkaBus(bootstrap=s.kafka_bootstrap, partitions=s.kafka_partitions, security=s.kafka_security())
        from argus.bus.memory import MemoryBus

        return MemoryBus()

    @cached_property
    def backend(self) -> InferenceBackend:
        s = self.settings
        if s.backend is BackendKind.triton:
            from argus.faces.pipeline import FacePipeline
            from argus.inference.triton import TritonBackend

            # every model the pipeline will call must be ready now: fail at start-up naming it, not on a frame
            return TritonBackend(url=s.triton_url, timeout_s=s.triton_timeout_s,
                                 models=FacePipeline.models_for(s.detector.value, emotion_rules=s.emotion_rules),
                                 ssl=s.triton_ssl, root_certificates=s.triton_ssl_root_certs)
        from argus.inference.backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(model_repository=s.model_repository, intra_op_threads=s.ort_threads)

    @cached_property
    def pipeline(self) -> FacePipeline:
        from argus.faces.pipeline import FacePipeline

        s = self.settings
        return FacePipeline(backend=self.backend, detector=s.detector.value, min_face_size=s.min_face_size,
                            det_threshold=s.det_threshold)

    @cached_property
    def gallery(self) -> Gallery:
        from argus.faces.embedder import EMBEDDING_DIM

        s = self.settings
        if s.gallery_sync == "bus":
            if s.gallery is GalleryKind.memory:
                raise ConfigError("ARGUS_GALLERY_SYNC=bus: expected ARGUS_GALLERY=faiss (each replica keeps a FAISS "
                                  "snapshot of the topic), got memory")
            from argus.gallery.replication import BusGallery

            return BusGallery(log=self.gallery_log, path=s.gallery_dir, dim=EMBEDDING_DIM, index=s.gallery_index,
                              omp_threads=s.faiss_threads)
        if s.gallery is GalleryKind.memory:
            from argus.gallery.memory import MemoryGallery

            return MemoryGallery(dim=EMBEDDING_DIM)
        from argus.gallery.faiss_gallery import FaissGallery

        return FaissGallery(path=s.gallery_dir, dim=EMBEDDING_DIM, index=s.gallery_index, omp_threads=s.faiss_threads)

    @cached_property
    def gallery_log(self) -> GalleryLog:
        """The replicated gallery's topic (``ARGUS_GALLERY_SYNC=bus``), on the configured bus's kind."""
        from argus.gallery.replication import KafkaGalleryLog, MemoryGalleryLog

        if self.settings.bus is BusKind.kafka:
            return KafkaGalleryLog(bootstrap=self.settings.kafka_bootstrap, security=self.settings.kafka_security())
        return MemoryGalleryLog()

    @cached_property
    def store(self) -> EventStore:
        from argus.store.base import Retention

        s = self.settings
        retention = Retention(events_days=s.retention_events_days, alerts_days=s.retention_alerts_days,
                              crops_days=s.retention_crops_days, audit_days=s.retention_audit_days or None)
        if s.store is StoreKind.mongodb:
            from argus.store.mongo import MongoEventStore

            return MongoEventStore(uri=s.mongo_connection_uri.get_secret_value(), database=s.mongo_database,
                                   retention=retention)
        from argus.store.sqlite import SqliteEventStore

        s.data_dir.mkdir(parents=True, exist_ok=True)
        return SqliteEventStore(path=s.data_dir / "events.sqlite", retention=retention)

    @cached_property
    def cameras(self) -> CameraRegistry:
        from argus.cameras import CameraRegistry

        if self.settings.cameras_file is None:
            raise ConfigError("ARGUS_CAMERAS_FILE is not set: the ingest and alerter stages need the camera registry")
        return CameraRegistry.load(self.settings.cameras_file)

    @cached_property
    def sources(self) -> Sequence[FrameSource] | None:
        """Injected frame sources replace the cameras' own (tests, benchmarks); None: open each camera's URL."""
        return None

    def frame_sources(self, cameras: Sequence[Camera]) -> list[FrameSource]:
        """What ingest reads: the injected sources, else one OpenCV source per registry camera."""
        if self.sources is not None:
            return list(self.sources)
        from argus.ingest.sources import source_for_camera

        return [source_for_camera(c, realtime=self.settings.ingest_files_realtime) for c in cameras]

    def close(self) -> None:
        for name in _CLOSED:
            obj = self.__dict__.get(name)
            if obj is not None and hasattr(obj, "close"):  # a file-synced gallery holds nothing to close
                try:
                    obj.close()
                except Exception as e:  # closing is best effort; never mask the real exit reason
                    log.warning("closing %s failed: %s", name, e)
