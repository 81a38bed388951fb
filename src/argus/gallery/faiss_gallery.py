"""The persisted watch-list gallery: FAISS search over embeddings kept in a directory.

On-disk layout of ``path/`` (format_version 2):

- ``persons.json`` — the commit point: ``format_version``, gallery ``version``, ``dim``, the name and sha256 of the
  embeddings file it goes with, every person (with its expiry) and its ``row_start``/``row_count``, the watch-list
  specs, and the name, sha256 and per-person row ranges of the negative-evidence file (null when there is none).
- ``embeddings.<version>.npy`` — (R, dim) float32 unit rows, each person's rows contiguous. The file name carries
  the version because two files cannot be replaced atomically together: the new embeddings file is written first
  under a fresh name, then ``persons.json`` is atomically replaced to point at it. A crash at any moment leaves
  either the old pair or the new pair, never a torn mix; stray files from a crash are deleted by the next write.
- ``negatives.<version>.npy`` — negative evidence ("not this person" faces), same scheme as the embeddings.
- ``audit.jsonl`` — append-only trail (:mod:`argus.gallery.audit`; erasure is its one sanctioned rewrite).

No file name carries a person id (they live only inside ``persons.json`` and ``audit.jsonl``), so an erasure that
rewrites those two leaves nothing in the directory naming the person. A per-person file would have to be named
with :func:`argus.ids.person_key`.
- ``gallery.lock`` — ``fcntl.flock`` target: writers hold it exclusively across read-modify-write (so the enrollment
  CLI and another writer never interleave or lose each other's change), loaders hold it shared while reading the
  pair (so a writer cannot delete the embeddings file they are about to open). POSIX only.

The FAISS index is not persisted: it is rebuilt from the embeddings on load. For ``flat`` that is a memory copy
(~10 ms per 100k x 128; a whole 100k-person load measured ~0.8 s, mostly JSON, person validation and the sha256
check), so a serialised index would save little, and one source of truth cannot disagree with its index. ``hnsw``
build is slow (~5 s per 20k x 128 on 2 cores), so a pure append (a new enrollment) extends the live graph instead;
removals and re-enrollments rebuild it (HNSW cannot delete). ``ivf`` retrains on every change. Both approximate
indexes are for galleries where flat search is too slow (~1M+ rows).

Every change rewrites both files (O(gallery): ~60 ms at 10k persons, ~1 s at 100k, fsyncs included). That suits
an enrollment rate of people, not of frames; it buys a gallery that is always one consistent pair of files.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import math
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Protocol

import faiss
import numpy as np

from argus.errors import ConfigError, InputError, StoreError
from argus.gallery.audit import AUDIT_FILE, AuditEntry, JsonlAuditLog, read_audit
from argus.gallery.base import Candidate, Person, Snapshot, SnapshotGallery, WatchlistSpec, embeddings_sha256

logger = logging.getLogger(__name__)

FORMAT_VERSION = 2
PERSONS_FILE = "persons.json"
LOCK_FILE = "gallery.lock"
INDEX_KINDS: tuple[str, ...] = ("flat", "hnsw", "ivf")

HNSW_M = 32  # graph degree: recall@1 >= 0.99 on 20k x 128 probes with efSearch 64 (tests/contract)
HNSW_EF_CONSTRUCTION = 40  # FAISS's default; 80 doubles build time for no recall gain here
HNSW_EF_SEARCH = 64
IVF_POINTS_PER_LIST = 39  # FAISS's own minimum training points per centroid
IVF_TRAIN_PER_LIST = 64  # k-means on a sample: 64 points per list trains as well as all rows, far faster at 1M
GPU_MAX_K = 2048  # FAISS GPU indexes refuse larger k



def _v1_to_v2(meta: dict[str, Any]) -> dict[str, Any]:
    """Format 2 added expiry (absent = none), watch-list specs and negative evidence (none in a format-1 gallery).
    The format number went up so an older Argus refuses a newer gallery instead of ignoring expiries."""
    return {**meta, "format_version": 2, "watchlists": [], "negatives_file": None, "negatives_sha256": None,
            "negative_rows": 0, "negatives": []}


#: format_version n -> function upgrading a persons.json dict from n to n + 1.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {1: _v1_to_v2}

Signature = tuple[int, int, int]


def _embeddings_name(version: int) -> str:
    return f"embeddings.{version:08d}.npy"


def _negatives_name(version: int) -> str:
    return f"negatives.{version:08d}.npy"


def _fsync_dir(path: Path) -> None:
    """Make a rename durable: without it a power cut can forget the os.replace even after the file's fsync."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: What an operator should do about the errno a gallery write failed with.
_WRITE_HINTS: dict[int, str] = {
    errno.EROFS: "the gallery directory is on a read-only filesystem: check the volume mount",
    errno.EACCES: "the gallery directory is not writable by this process: check its owner and mode (and the pod's "
                  "fsGroup)",
    errno.EPERM: "the gallery directory is not writable by this process: check its owner and mode",
    errno.ENOSPC: "the filesystem holding the gallery directory is full: free space or grow the volume",
    errno.EDQUOT: "the disk quota of the gallery directory is exhausted: free space or raise the quota",
}


class GalleryWriteError(StoreError):
    """The gallery directory refused a write (read-only, full, no permission): an operator must fix the volume.

    Not a TransientError: retrying the same write into a read-only or full directory fails the same way. Raised
    before anything changed, so the gallery (on disk and in memory) stays at its last good version; ``path`` and
    ``errno`` say what to fix."""

    def __init__(self, message: str, *, path: Path, errno: int | None) -> None:
        super().__init__(message)
        self.path = path
        self.errno = errno


def write_error(path: Path, e: OSError | ValueError, *, what: str) -> GalleryWriteError:
    """``e`` as a GalleryWriteError naming the path, the errno (number and name) and what to do about it."""
    no = e.errno if isinstance(e, OSError) else None
    name = errno.errorcode.get(no, "?") if no is not None else "no errno"
    hint = _WRITE_HINTS.get(no, "see the error") if no is not None else "see the error"
    reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
    return GalleryWriteError(f"gallery {what} {path}: write failed: {reason} (errno {no} {name}): {hint}",
                             path=path, errno=no)


class FileWriter(Protocol):
    """How the gallery writes one file: all or nothing. A seam so a test can inject the one fault a real
    filesystem here will not give on demand (ENOSPC: no tiny tmpfs can be mounted)."""

    def write(self, target: Path, write: Callable[[IO[bytes]], object]) -> None:
        """Make ``target`` hold exactly what ``write`` writes, or raise GalleryWriteError and leave it as it was."""
        ...


class AtomicFileWriter:
    """Temp file + fsync + os.replace + directory fsync, so readers see the old or the new file, never a part."""

    def write(self, target: Path, write: Callable[[IO[bytes]], object]) -> None:
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
            _fsync_dir(target.parent)
        except (OSError, ValueError) as e:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise write_error(target, e, what="file") from e


class FaissGallery(SnapshotGallery):
    """Cosine search with FAISS inner product over unit vectors, persisted in ``path``, hot-reloadable.

    ``index``: ``"flat"`` (exact, default), ``"hnsw"`` or ``"ivf"`` (approximate). ``use_gpu``: True requires a
    faiss-gpu build with a visible GPU; None uses one when ``faiss.get_num_gpus() > 0`` and the index kind has a
    GPU implementation (HNSW has none); False forces CPU.
    """

    def __init__(self, *, path: Path | str, dim: int, index: str = "flat", use_gpu: bool | None = None,
                 omp_threads: int = 0, writer: FileWriter | None = None) -> None:
        """``omp_threads`` > 0 sets FAISS's OpenMP thread count — for the whole process, as FAISS offers no other
        scope; parallel searches thrash on shared nodes, so a service sets 1 (``ARGUS_FAISS_THREADS``).
        ``writer``: how files are written (default :class:`AtomicFileWriter`; tests inject faults)."""
        self._writer: FileWriter = writer if writer is not None else AtomicFileWriter()
        if omp_threads:
            import faiss

            faiss.omp_set_num_threads(omp_threads)
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ConfigError(f"gallery dim: expected an integer >= 1, got {dim!r}")
        if index not in INDEX_KINDS:
            raise ConfigError(f"gallery index: expected one of {INDEX_KINDS}, got {index!r}")
        super().__init__(dim=dim)
        self.path = Path(path)
        self._kind = index
        self._gpu = self._decide_gpu(use_gpu)
        self._index: Any = None
        self._sig: Signature | None = None
        self._disk_sha = embeddings_sha256(self._snap.embeddings)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise write_error(self.path, e, what="directory") from e
        self._audit_log = JsonlAuditLog(self.path / AUDIT_FILE)
        with self._mu, self._flock(exclusive=False):
            if not self._load_locked():
                self._index = self._build_index(self._snap.embeddings)
        logger.info(
            "gallery %s: %s index on %s, version %d, %d persons / %d embeddings",
            self.path, self._kind, "GPU" if self._gpu else "CPU", self.version, len(self), self._snap.rows,
        )

    def __repr__(self) -> str:
        return (f"FaissGallery(path={str(self.path)!r}, dim={self.dim}, index={self._kind!r}, "
                f"gpu={self._gpu}, version={self.version}, persons={len(self)})")

    @property
    def uses_gpu(self) -> bool:
        return self._gpu

    def _decide_gpu(self, use_gpu: bool | None) -> bool:
        n = int(faiss.get_num_gpus()) if hasattr(faiss, "get_num_gpus") else 0
        if use_gpu is True:
            if n == 0:
                raise ConfigError("gallery use_gpu: expected a faiss-gpu build with >= 1 visible GPU, got 0 GPUs")
            if self._kind == "hnsw":
                raise ConfigError("gallery use_gpu with index 'hnsw': expected index 'flat' or 'ivf' (FAISS has "
                                  "no GPU HNSW), got 'hnsw'")
            return True
        if use_gpu is None:
            return n > 0 and self._kind != "hnsw"
        return False

    # ---------------------------------------------------------------------------------------------- locking

    @contextlib.contextmanager
    def _flock(self, *, exclusive: bool) -> Iterator[None]:
        """Cross-process lock; a fresh fd each time so two instances in one process also exclude each other."""
        lock_path = self.path / LOCK_FILE
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise StoreError(f"gallery lock {lock_path}: cannot open: {e}") from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)  # closing the last fd of the open file description releases the flock

    @contextlib.contextmanager
    def _write_guard(self) -> Iterator[None]:
        """Exclusive lock, then catch up with whatever another writer committed, so no change is lost. ``_mu``
        first, like :meth:`reload_if_changed`: one lock order within a process."""
        with self._mu, self._flock(exclusive=True):
            self._load_locked()
            yield

    # ---------------------------------------------------------------------------------------------- loading

    def _stat_sig(self) -> Signature | None:
        """os.replace gives persons.json a new inode, so this changes on every commit even within one mtime tick."""
        try:
            st = os.stat(self.path / PERSONS_FILE)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise StoreError(f"gallery {self.path / PERSONS_FILE}: stat failed: {e}") from e
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def reload_if_changed(self) -> bool:
        """One stat() when nothing changed, so the matcher can call it before every batch."""
        if self._stat_sig() == self._sig:
            return False
        with self._mu, self._flock(exclusive=False):
            changed = self._load_locked()
        if changed:
            logger.info("gallery %s: reloaded version %d (%d persons)", self.path, self.version, len(self))
        return changed

    def _load_locked(self) -> bool:
        """Install what is on disk if it differs from what we hold. Caller holds ``_mu`` and a flock."""
        sig = self._stat_sig()
        if sig is None:
            if self._snap.version > 0:
                logger.warning("gallery %s: %s disappeared; keeping version %d in memory",
                               self.path, PERSONS_FILE, self._snap.version)
            return False
        if sig == self._sig:
            return False
        meta = self._read_meta()
        if meta["version"] == self._snap.version and meta["embeddings_sha256"] == self._disk_sha:
            self._sig = sig
            return False
        snap = self._read_snapshot(meta)
        self._install(self._snap, snap, same_rows=meta["embeddings_sha256"] == self._disk_sha)
        self._sig = sig
        self._disk_sha = meta["embeddings_sha256"]
        return True

    def _read_meta(self) -> dict[str, Any]:
        file = self.path / PERSONS_FILE
        try:
            meta = json.loads(file.read_bytes())
        except (OSError, ValueError) as e:
            raise StoreError(f"gallery {file}: cannot read: {e}") from e
        if not isinstance(meta, dict):
            raise StoreError(f"gallery {file}: expected a JSON object, got {type(meta).__name__}")
        fv = meta.get("format_version")
        if isinstance(fv, bool) or not isinstance(fv, int) or fv < 1:
            raise StoreError(f"gallery {file}: expected an integer format_version >= 1, got {fv!r}")
        if fv > FORMAT_VERSION:
            raise StoreError(f"gallery {file}: expected format_version <= {FORMAT_VERSION} (written by a newer "
                             f"Argus?), got {fv}")
        while fv < FORMAT_VERSION:
            meta = MIGRATIONS[fv](meta)
            fv += 1
        missing = {"version", "dim", "embeddings_file", "embeddings_sha256", "rows", "persons", "watchlists",
                   "negatives_file", "negatives_sha256", "negative_rows", "negatives"} - meta.keys()
        if missing:
            raise StoreError(f"gallery {file}: expected keys {sorted(missing)}, got {sorted(meta)}")
        if meta["dim"] != self.dim:
            raise ConfigError(f"gallery {self.path}: expected dim {self.dim} (configured), got {meta['dim']} on disk")
        return meta

    def _load_rows(self, name: object, rows: int, sha: object) -> np.ndarray:
        name = str(name)
        if Path(name).name != name:
            raise StoreError(f"gallery {self.path / PERSONS_FILE}: expected a bare file name, got {name!r}")
        file = self.path / name
        try:
            emb = np.load(file, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise StoreError(f"gallery {file}: cannot load embeddings: {e}") from e
        if emb.dtype != np.float32 or emb.shape != (rows, self.dim):
            raise StoreError(f"gallery {file}: expected float32 ({rows}, {self.dim}), got {emb.dtype} {emb.shape}")
        if embeddings_sha256(emb) != sha:
            raise StoreError(f"gallery {file}: expected sha256 {sha}, got {embeddings_sha256(emb)} (corrupt or "
                             f"mismatched file)")
        return emb

    def _read_snapshot(self, meta: dict[str, Any]) -> Snapshot:
        emb = self._load_rows(meta["embeddings_file"], meta["rows"], meta["embeddings_sha256"])
        persons: list[Person] = []
        counts: list[int] = []
        row = 0
        try:
            for rec in meta["persons"]:
                if rec["row_start"] != row:
                    raise StoreError(f"gallery {self.path / PERSONS_FILE}: person {rec.get('person_id')!r}: "
                                     f"expected row_start {row}, got {rec['row_start']}")
                persons.append(Person.from_dict(rec))
                counts.append(int(rec["row_count"]))
                row += counts[-1]
            watchlists = {w.name: w for w in (WatchlistSpec.from_dict(rec) for rec in meta["watchlists"])}
            negatives: dict[str, np.ndarray] = {}
            if meta["negatives_file"] is not None:
                neg = self._load_rows(meta["negatives_file"], meta["negative_rows"], meta["negatives_sha256"])
                for rec in meta["negatives"]:
                    s, c = int(rec["row_start"]), int(rec["row_count"])
                    if s < 0 or c < 1 or s + c > neg.shape[0]:
                        raise StoreError(f"gallery {self.path / PERSONS_FILE}: negatives of "
                                         f"{rec.get('person_id')!r}: expected rows within 0..{neg.shape[0]}, "
                                         f"got {s}+{c}")
                    negatives[str(rec["person_id"])] = neg[s : s + c]
            return Snapshot.build(dim=self.dim, version=int(meta["version"]), persons=persons, counts=counts,
                                  embeddings=emb, watchlists=watchlists, negatives=negatives)
        except (InputError, KeyError, TypeError, ValueError) as e:
            raise StoreError(f"gallery {self.path / PERSONS_FILE}: bad person records: {e}") from e

    # ---------------------------------------------------------------------------------------------- writing

    def _commit(self, before: Snapshot, after: Snapshot, entries: Sequence[AuditEntry]) -> None:
        """Build (off to the side), persist, install, audit: a failed persist leaves memory and disk at ``before``."""
        same = after.embeddings is before.embeddings  # a metadata-only change: the index stays valid
        extend = not same and self._can_extend(before, after)
        new_index = None if extend or same else self._build_index(after.embeddings)
        try:
            self._persist(after)
        except GalleryWriteError as e:
            raise GalleryWriteError(f"{e}; the change was not applied: the gallery stays at version "
                                    f"{before.version}", path=e.path, errno=e.errno) from e
        if extend:
            self._extend_index(before, after)
        elif not same:
            self._index = new_index
        self._snap = after
        try:
            self._audit_log.append(entries)
        except StoreError as e:
            raise StoreError(f"gallery {self.path}: version {after.version} committed but its audit entries were "
                             f"not written: {e}") from e

    def _persist(self, snap: Snapshot) -> None:
        emb_name = _embeddings_name(snap.version)
        sha = embeddings_sha256(snap.embeddings)
        neg_names = [pid for pid in snap.index_of if pid in snap.negatives]  # row order of the persons
        neg = (np.concatenate([snap.negatives[p] for p in neg_names], axis=0) if neg_names
               else np.zeros((0, snap.dim), np.float32))
        neg_name = _negatives_name(snap.version) if neg_names else None
        neg_starts = np.cumsum([0] + [int(snap.negatives[p].shape[0]) for p in neg_names])
        meta = {
            "format_version": FORMAT_VERSION,
            "version": snap.version,
            "dim": snap.dim,
            "embeddings_file": emb_name,
            "embeddings_sha256": sha,
            "rows": snap.rows,
            "persons": [
                {**p.to_dict(), "row_start": int(s), "row_count": int(c)}
                for p, s, c in zip(snap.persons, snap.starts, snap.counts, strict=True)
            ],
            "watchlists": [w.to_dict() for _, w in sorted(snap.watchlists.items())],
            "negatives_file": neg_name,
            "negatives_sha256": embeddings_sha256(neg) if neg_name else None,
            "negative_rows": int(neg.shape[0]),
            "negatives": [{"person_id": p, "row_start": int(neg_starts[i]),
                           "row_count": int(snap.negatives[p].shape[0])} for i, p in enumerate(neg_names)],
        }
        # Compact: indent= would switch json to its pure-Python encoder, 5x slower on 100k persons (use jq to read).
        data = json.dumps(meta, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        written: list[Path] = []
        try:
            self._writer.write(self.path / emb_name, lambda f: np.save(f, snap.embeddings, allow_pickle=False))
            written.append(self.path / emb_name)
            if neg_name is not None:
                self._writer.write(self.path / neg_name, lambda f: np.save(f, neg, allow_pickle=False))
                written.append(self.path / neg_name)
            self._writer.write(self.path / PERSONS_FILE, lambda f: f.write(data))
        except GalleryWriteError:
            # persons.json still names the old pair: the new files are orphans; leave nothing half-written behind
            for f in written:
                with contextlib.suppress(OSError):
                    f.unlink()
            raise
        self._sig = self._stat_sig()
        self._disk_sha = sha
        self._remove_stale_files(keep={emb_name, neg_name})

    def _remove_stale_files(self, *, keep: set[str | None]) -> None:
        """Old embeddings / negatives and crash leftovers; safe because we hold the exclusive lock (no loader is
        mid-read)."""
        for f in self.path.iterdir():
            stale = (f.name.startswith(("embeddings.", "negatives.")) and f.name.endswith(".npy")
                     and f.name not in keep) or (f.name.startswith(".") and f.name.endswith(".tmp"))
            if stale:
                try:
                    f.unlink()
                except OSError as e:
                    logger.warning("gallery %s: cannot remove stale %s: %s", self.path, f.name, e)

    # ---------------------------------------------------------------------------------------------- the index

    def _build_index(self, emb: np.ndarray) -> Any:
        rows = emb.shape[0]
        index: Any
        try:
            nlist = max(1, min(int(4 * math.sqrt(rows)), rows // IVF_POINTS_PER_LIST))
            if self._kind == "flat" or (self._kind == "ivf" and nlist == 1):
                index = faiss.IndexFlatIP(self.dim)  # one inverted list is a flat scan, minus the training
            elif self._kind == "hnsw":
                index = faiss.IndexHNSWFlat(self.dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
                index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
                index.hnsw.efSearch = HNSW_EF_SEARCH
            else:
                quantizer = faiss.IndexFlatIP(self.dim)
                index = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
                sample = IVF_TRAIN_PER_LIST * nlist
                if rows > sample:  # deterministic, so a reload trains exactly the same lists
                    emb_train = emb[np.random.default_rng(0).choice(rows, size=sample, replace=False)]
                else:
                    emb_train = emb
                index.train(emb_train)
                index.nprobe = min(nlist, max(8, nlist // 8))
            if rows:
                index.add(emb)
            if self._gpu:
                index = faiss.index_cpu_to_all_gpus(index)
        except RuntimeError as e:
            raise StoreError(
                f"gallery {self.path}: building the {self._kind} index over {rows} rows failed: {e}"
            ) from e
        return index

    def _can_extend(self, before: Snapshot, after: Snapshot) -> bool:
        return self._kind == "hnsw" and self._index is not None and after.is_append_of(before)

    def _extend_index(self, before: Snapshot, after: Snapshot) -> None:
        try:
            self._index.add(after.embeddings[before.rows :])
        except RuntimeError as e:
            self._sig = None  # force the next reload to rebuild from disk
            raise StoreError(f"gallery {self.path}: extending the index failed: {e}") from e

    def _install(self, before: Snapshot, after: Snapshot, *, same_rows: bool) -> None:
        if same_rows and self._index is not None and after.rows == before.rows:
            pass  # a metadata-only change (expiry, watch-list spec, negatives): the index over the rows stays valid
        elif self._can_extend(before, after):
            self._extend_index(before, after)
        else:
            self._index = self._build_index(after.embeddings)
        self._snap = after

    def _search(self, snap: Snapshot, queries: np.ndarray, k: int) -> list[list[Candidate]]:
        # The best rows of the top-k persons are always within the top k * max_rows rows (each better-ranked
        # person can hold at most max_rows of the rows above), so one search per batch suffices.
        kk = min(snap.rows, k * snap.max_rows_per_person)
        if self._gpu:
            kk = min(kk, GPU_MAX_K)  # only matters for k * (most embeddings of one person) > 2048
        try:
            if self._kind == "hnsw" and kk > HNSW_EF_SEARCH:
                scores, rows = self._index.search(queries, kk, params=faiss.SearchParametersHNSW(efSearch=kk))  # type: ignore[attr-defined]
            else:
                scores, rows = self._index.search(queries, kk)
        except RuntimeError as e:
            raise StoreError(f"gallery {self.path}: faiss search of {len(queries)} queries failed: {e}") from e
        person_idx = np.where(rows >= 0, snap.row_person[rows], -1)
        if snap.max_rows_per_person == 1:  # every row a different person: no de-duplication needed
            out: list[list[Candidate]] = []
            for pi, sc in zip(person_idx, scores, strict=True):
                hits = []
                for j, s in zip(pi.tolist(), sc.tolist(), strict=True):
                    if j >= 0:
                        p = snap.persons[j]
                        hits.append(Candidate(person_id=p.person_id, display_name=p.display_name,
                                                watchlist=p.watchlist, score=s))
                out.append(hits[:k])
            return out
        return [snap.candidates(pi, sc, k) for pi, sc in zip(person_idx, scores, strict=True)]

    def audit(self) -> list[AuditEntry]:
        return read_audit(self.path / AUDIT_FILE)

    def _redact_audit(self, person_id: str) -> int:
        return self._audit_log.redact(person_id)
