"""Builds each I/O seam from Settings, once, so a stage never decides which implementation it talks to.

Server clients are imported lazily: the embedded demo never imports kafka-python, tritonclient or pymongo.
In the one-process demo all four stages share one Resources (one in-memory bus, one ONNX Runtime, one gallery).
"""

from __future__ import annotations

import logging
import threading
from functools import cached_property
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry

from argus.config import BackendKind, BusKind, Settings, StoreKind

if TYPE_CHECKING:
    from argus.bus.base import Bus
    from argus.cameras import CameraRegistry
    from argus.faces.pipeline import FacePipeline
    from argus.gallery.base import Gallery
    from argus.inference.backend import InferenceBackend
    from argus.store.base import EventStore

log = logging.getLogger(__name__)


class Resources:
    def __init__(self, settings: Settings, *, registry: CollectorRegistry | None = None, **injected: Any) -> None:
        self.settings = settings
        self.registry = registry if registry is not None else CollectorRegistry()
        self._lock = threading.RLock()
        for name, value in injected.items():  # tests and the demo inject ready-made seams
            self.__dict__[name] = value

    @cached_property
    def bus(self) -> Bus:
        s = self.settings
        if s.bus is BusKind.kafka:
            from argus.bus.kafka import KafkaBus

            return KafkaBus(bootstrap=s.kafka_bootstrap, partitions=s.kafka_partitions)
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
                                 models=FacePipeline.models_for(s.detector.value))
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
        from argus.gallery.faiss_gallery import FaissGallery

        s = self.settings
        if s.faiss_threads:
            import faiss

            faiss.omp_set_num_threads(s.faiss_threads)  # process-wide; parallel threads thrash on shared nodes
        return FaissGallery(path=s.gallery_dir, dim=EMBEDDING_DIM, index=s.gallery_index)

    @cached_property
    def store(self) -> EventStore:
        s = self.settings
        if s.store is StoreKind.mongodb:
            from argus.store.mongo import MongoEventStore

            return MongoEventStore(uri=s.mongo_uri.get_secret_value(), database=s.mongo_database,
                                   retention_days=s.retention_days)
        from argus.store.sqlite import SqliteEventStore

        s.data_dir.mkdir(parents=True, exist_ok=True)
        return SqliteEventStore(path=s.data_dir / "events.sqlite")

    @cached_property
    def cameras(self) -> CameraRegistry:
        from argus.cameras import CameraRegistry
        from argus.errors import ConfigError

        if self.settings.cameras_file is None:
            raise ConfigError("ARGUS_CAMERAS_FILE is not set: the ingest and alerter stages need the camera registry")
        return CameraRegistry.load(self.settings.cameras_file)

    def close(self) -> None:
        for name in ("bus", "backend", "store"):
            obj = self.__dict__.get(name)
            if obj is not None:
                try:
                    obj.close()
                except Exception as e:  # closing is best effort; never mask the real exit reason
                    log.warning("closing %s failed: %s", name, e)
