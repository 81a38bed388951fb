"""A disk with only so many bytes left, behind the gallery's FileWriter seam: the one fault a real filesystem here
will not give on demand (no tiny tmpfs can be mounted). Shared by the gallery and API fault tests."""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from argus.gallery.faiss_gallery import AtomicFileWriter


class _Limited:
    def __init__(self, f: IO[bytes], disk: FullDisk) -> None:
        self._f, self._disk = f, disk

    def write(self, b: Any) -> int:
        data = bytes(b)
        if len(data) > self._disk.free:
            self._f.write(data[: self._disk.free])  # the disk takes what it has room for, then refuses
            self._disk.free = 0
            raise OSError(errno.ENOSPC, "No space left on device")
        self._disk.free -= len(data)
        return self._f.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)


class FullDisk(AtomicFileWriter):
    """The real atomic writer over a disk with ``free`` bytes left."""

    def __init__(self, free: int = 1 << 30) -> None:
        self.free = free

    def write(self, target: Path, write: Callable[[IO[bytes]], object]) -> None:
        super().write(target, lambda f: write(_Limited(f, self)))  # type: ignore[arg-type]
