"""A gallery directory that is read-only or full: the change fails with a GalleryWriteError naming the path and the
errno, nothing is half-written, and whoever serves the gallery keeps its last good version (file mode, and the
snapshot writer of a replica in bus mode).

Read-only is real (chmod; run as an unprivileged user when the tests run as root, whom chmod does not stop). A
full disk is injected with a FileWriter whose file takes only so many bytes: no tiny tmpfs can be mounted here."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from disk_faults import FullDisk

from argus.gallery.base import Person
from argus.gallery.faiss_gallery import FaissGallery, GalleryWriteError
from argus.gallery.replication import BusGallery, MemoryGalleryLog

DIM = 16
NOBODY = 65534


def _unit(seed: int, n: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _listing(d: Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in sorted(d.iterdir())}


def test_a_full_disk_fails_the_enrolment_cleanly_and_the_matcher_keeps_its_version(tmp_path: Path):
    disk = FullDisk()
    writer = FaissGallery(path=tmp_path, dim=DIM, writer=disk)
    writer.enroll(Person(person_id="P-1", display_name="a"), _unit(1, 2), actor="t", reason="r")
    matcher = FaissGallery(path=tmp_path, dim=DIM)
    before = _listing(tmp_path)
    disk.free = 600  # room for the new embeddings file (~450 bytes), not for persons.json after it
    with pytest.raises(GalleryWriteError) as err:
        writer.enroll(Person(person_id="P-2", display_name="b"), _unit(2, 3), actor="t", reason="r")
    e = err.value
    assert e.errno == errno.ENOSPC and e.path == tmp_path / "persons.json"
    assert "ENOSPC" in str(e) and "full" in str(e) and "stays at version 1" in str(e) and str(tmp_path) in str(e)
    assert _listing(tmp_path) == before  # no temp file, no orphaned embeddings file, the audit log untouched
    assert writer.version == 1 and writer.get("P-2") is None
    assert matcher.reload_if_changed() is False and matcher.version == 1
    assert matcher.search(_unit(1, 1), 1)[0][0].person_id == "P-1"
    disk.free = 1 << 30  # space freed: the same enrolment now goes through
    writer.enroll(Person(person_id="P-2", display_name="b"), _unit(2, 3), actor="t", reason="r")
    assert matcher.reload_if_changed() and matcher.version == 2


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A directory an unprivileged child can reach (pytest's tmp_path is private to root)."""
    d = Path(tempfile.mkdtemp(prefix="argus-ro-"))
    d.chmod(0o755)
    yield d
    for root, dirs, _ in os.walk(d):
        for x in dirs:
            os.chmod(os.path.join(root, x), 0o755)
    shutil.rmtree(d, ignore_errors=True)


def _enroll_in_child(gdir: Path, *, as_user: int | None) -> dict[str, Any]:
    """Enroll P-2 into ``gdir`` in a forked child (as ``as_user`` when given: root ignores a directory's mode, an
    unprivileged user does not) and return what happened."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.close(r)
            if as_user is not None:
                os.setgid(as_user)
                os.setuid(as_user)
            g = FaissGallery(path=gdir, dim=DIM)
            try:
                g.enroll(Person(person_id="P-2", display_name="b"), _unit(5, 2), actor="t", reason="r")
                res: dict[str, Any] = {"raised": None}
            except GalleryWriteError as e:
                res = {"raised": type(e).__name__, "errno": e.errno, "path": str(e.path), "msg": str(e),
                       "version": g.version}
            os.write(w, json.dumps(res).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0 and data, "the child failed"
    return json.loads(data)


def test_a_read_only_directory_fails_the_enrolment_with_its_path_and_errno(shared_tmp: Path):
    gdir = shared_tmp / "gallery"
    FaissGallery(path=gdir, dim=DIM).enroll(Person(person_id="P-1", display_name="a"), _unit(1, 2), actor="t",
                                            reason="r")
    as_root = os.geteuid() == 0
    if as_root:
        for f in [gdir, *gdir.iterdir()]:
            os.chown(f, NOBODY, NOBODY)
    before = _listing(gdir)
    gdir.chmod(0o555)
    try:
        res = _enroll_in_child(gdir, as_user=NOBODY if as_root else None)
    finally:
        gdir.chmod(0o755)
    assert res["raised"] == "GalleryWriteError", res
    assert res["errno"] == errno.EACCES and res["path"].startswith(str(gdir)) and res["version"] == 1
    assert "EACCES" in res["msg"] and "not writable" in res["msg"] and "stays at version 1" in res["msg"]
    assert _listing(gdir) == before
    matcher = FaissGallery(path=gdir, dim=DIM)
    assert matcher.version == 1 and matcher.search(_unit(1, 1), 1)[0][0].person_id == "P-1"


def test_a_replica_whose_snapshot_directory_is_full_keeps_serving_and_says_why(tmp_path: Path):
    log = MemoryGalleryLog()
    api = BusGallery(log=log, path=tmp_path / "api", dim=DIM, follow=False)
    api.enroll(Person(person_id="P-1", display_name="a"), _unit(1, 2), actor="t", reason="r")
    disk = FullDisk()
    replica = BusGallery(log=log, path=tmp_path / "m", dim=DIM, follow=False, writer=disk)
    assert replica.write_snapshot()
    good = _listing(tmp_path / "m")
    api.enroll(Person(person_id="P-2", display_name="b"), _unit(2, 2), actor="t", reason="r")
    replica.catch_up()
    disk.free = 100
    replica._snapshot_quietly()  # what the follower thread does every snapshot_every_s
    assert isinstance(replica.snapshot_error, GalleryWriteError) and replica.snapshot_error.errno == errno.ENOSPC
    assert _listing(tmp_path / "m") == good  # the last good snapshot is intact
    assert replica.version == 2 and replica.search(_unit(2, 1), 1)[0][0].person_id == "P-2"
    restarted = BusGallery(log=log, path=tmp_path / "m", dim=DIM, follow=False)  # old snapshot + replay
    assert restarted.version == 2 and len(restarted) == 2
    disk.free = 1 << 30
    replica._snapshot_quietly()
    assert replica.snapshot_error is None
