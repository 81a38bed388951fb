"""The Gallery contract, run against the in-memory gallery and every FAISS index kind, plus FAISS-only behaviour
(persistence, hot reload, cross-process locking, crash safety, agreement with the numpy reference, HNSW recall)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from argus.errors import ConfigError, InputError, StoreError
from argus.gallery import FaissGallery, Gallery, MemoryGallery, Person, WatchlistSpec, read_audit
from argus.gallery import faiss_gallery as fg
from argus.gallery.base import embeddings_sha256

DIM = 128
SRC = str(Path(__file__).resolve().parents[2] / "src")

MakeGallery = Callable[[], Gallery]


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def near(rng: np.random.Generator, x: np.ndarray, noise: float) -> np.ndarray:
    """Probes of the same identities: the enrolled vector plus noise, renormalised (cosine ~0.8 at noise 0.06)."""
    y = x + noise * rng.standard_normal(x.shape).astype(np.float32)
    return (y / np.linalg.norm(y, axis=1, keepdims=True)).astype(np.float32)


def person(pid: str, watchlist: str = "default") -> Person:
    return Person(person_id=pid, display_name=pid.title(), watchlist=watchlist, enrolled_at=1_700_000_000.0)


@pytest.fixture(params=["memory", "faiss-flat", "faiss-hnsw", "faiss-ivf"])
def make_gallery(request: pytest.FixtureRequest, tmp_path: Path) -> MakeGallery:
    counter = iter(range(1000))

    def make() -> Gallery:
        if request.param == "memory":
            return MemoryGallery(dim=DIM)
        return FaissGallery(path=tmp_path / f"g{next(counter)}", dim=DIM, index=request.param.split("-")[1])

    return make


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


# ------------------------------------------------------------------------------------------ contract (all kinds)


def test_enrolled_person_is_top_hit_with_score_near_one_for_own_embedding(make_gallery, rng):
    g = make_gallery()
    emb = unit(rng, 6)
    for i in range(6):
        g.enroll(person(f"p{i}"), emb[i : i + 1], actor="alice", reason="test")
    results = g.search(emb, k=3)
    assert len(results) == 6
    for i, hits in enumerate(results):
        assert hits[0].person_id == f"p{i}"
        assert hits[0].display_name == f"P{i}"
        assert hits[0].score == pytest.approx(1.0, abs=1e-5)
        assert len(hits) == 3
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_person_with_several_embeddings_appears_once_scored_by_best_embedding(make_gallery, rng):
    g = make_gallery()
    a, b = unit(rng, 4), unit(rng, 1)
    g.enroll(person("alice"), a, actor="op", reason="test")
    g.enroll(person("bob"), b, actor="op", reason="test")
    probe = near(rng, a[2:3], 0.02)
    hits = g.search(probe, k=5)[0]
    assert [h.person_id for h in hits] == ["alice", "bob"]
    assert hits[0].score == pytest.approx(float((a @ probe[0]).max()), abs=1e-5)


def test_k_larger_than_gallery_returns_every_person_once(make_gallery, rng):
    g = make_gallery()
    g.enroll(person("a"), unit(rng, 3), actor="op", reason="test")
    g.enroll(person("b"), unit(rng, 2), actor="op", reason="test")
    g.enroll(person("c"), unit(rng, 1), actor="op", reason="test")
    hits = g.search(unit(rng, 2), k=50)
    assert [sorted(h.person_id for h in q) for q in hits] == [["a", "b", "c"], ["a", "b", "c"]]


def test_empty_gallery_search_returns_one_empty_list_per_query(make_gallery, rng):
    g = make_gallery()
    assert len(g) == 0
    assert g.search(unit(rng, 3), k=5) == [[], [], []]
    assert g.search(np.zeros((0, DIM), np.float32), k=5) == []


def test_remove_takes_person_out_of_search_and_listing(make_gallery, rng):
    g = make_gallery()
    emb = unit(rng, 3)
    for i in range(3):
        g.enroll(person(f"p{i}"), emb[i : i + 1], actor="op", reason="test")
    g.remove("p1", actor="bob", reason="case closed")
    assert [p.person_id for p in g.persons()] == ["p0", "p2"]
    assert g.get("p1") is None and g.get("p2") == person("p2")
    assert len(g) == 2
    assert all(h.person_id != "p1" for h in g.search(emb[1:2], k=5)[0])
    assert g.search(emb[2:3], k=1)[0][0].person_id == "p2"


def test_remove_unknown_id_raises_input_error_naming_it(make_gallery, rng):
    g = make_gallery()
    g.enroll(person("known"), unit(rng, 1), actor="op", reason="test")
    with pytest.raises(InputError, match=r"expected an enrolled person_id .* got unknown 'ghost'"):
        g.remove("ghost", actor="op", reason="test")
    assert g.version == 1


def test_re_enroll_replaces_embeddings_and_metadata(make_gallery, rng):
    g = make_gallery()
    old, new = unit(rng, 2), unit(rng, 1)
    g.enroll(person("x"), old, actor="op", reason="first photos")
    g.enroll(person("y"), unit(rng, 1), actor="op", reason="test")
    g.enroll(person("x", watchlist="vip"), new, actor="op", reason="better photo")
    assert len(g) == 2
    assert g.get("x") == person("x", watchlist="vip")
    hit = g.search(new, k=1)[0][0]
    assert (hit.person_id, hit.watchlist) == ("x", "vip")
    assert hit.score == pytest.approx(1.0, abs=1e-5)
    old_hits = {h.person_id: h.score for h in g.search(old, k=2)[0]}
    assert old_hits["x"] < 0.5  # the old embeddings are gone


@pytest.mark.parametrize(
    ("embeddings", "message"),
    [
        (np.ones(DIM, np.float32) / np.sqrt(DIM), r"expected shape \(M, 128\), got \(128,\)"),
        (np.ones((2, 64), np.float32) / 8.0, r"expected shape \(M, 128\), got \(2, 64\)"),
        (np.ones((1, DIM), np.float64) / np.sqrt(DIM), r"expected dtype float32, got float64"),
        (np.ones((2, DIM), np.float32), r"row 0: expected unit L2 norm \(±0.01\), got 11.3137"),
        (np.zeros((0, DIM), np.float32), r"expected at least one row, got shape \(0, 128\)"),
        (np.full((1, DIM), np.nan, np.float32), r"row 0: expected finite values, got NaN or inf"),
        ([[1.0] + [0.0] * (DIM - 1)], r"expected a numpy array of shape \(M, 128\), got list"),
    ],
    ids=["1d", "wrong-dim", "float64", "not-unit", "empty", "nan", "list"],
)
def test_bad_embeddings_are_rejected_with_expected_got_message(make_gallery, embeddings, message):
    g = make_gallery()
    with pytest.raises(InputError, match=message):
        g.enroll(person("p"), embeddings, actor="op", reason="test")
    assert len(g) == 0 and g.version == 0 and g.audit() == []


def test_bad_queries_and_k_are_rejected(make_gallery, rng):
    g = make_gallery()
    g.enroll(person("p"), unit(rng, 1), actor="op", reason="test")
    with pytest.raises(InputError, match=r"queries: expected shape \(M, 128\), got \(128,\)"):
        g.search(unit(rng, 1)[0], k=1)
    with pytest.raises(InputError, match=r"queries: expected dtype float32, got float64"):
        g.search(unit(rng, 1).astype(np.float64), k=1)
    with pytest.raises(InputError, match=r"queries row 1: expected unit L2 norm"):
        g.search(np.vstack([unit(rng, 1), 2 * unit(rng, 1)]), k=1)
    with pytest.raises(InputError, match=r"k: expected an integer >= 1, got 0"):
        g.search(unit(rng, 1), k=0)


def test_bad_person_fields_and_missing_actor_reason_are_rejected(make_gallery, rng):
    with pytest.raises(InputError, match=r"person_id: expected a person id .* got 'Bad Id'"):
        Person(person_id="Bad Id", display_name="x")
    with pytest.raises(InputError, match=r"watchlist: expected a slug"):
        Person(person_id="ok", display_name="x", watchlist="VIP!")
    with pytest.raises(InputError, match=r"display_name of ok: expected a non-empty string"):
        Person(person_id="ok", display_name="  ")
    g = make_gallery()
    with pytest.raises(InputError, match=r"actor: expected a non-empty string, got ''"):
        g.enroll(person("p"), unit(rng, 1), actor="", reason="test")
    with pytest.raises(InputError, match=r"reason: expected a non-empty string"):
        g.remove("p", actor="op", reason=" ")
    assert g.version == 0


def test_version_bumps_on_every_change_and_only_then(make_gallery, rng):
    g = make_gallery()
    assert g.version == 0
    g.enroll(person("a"), unit(rng, 1), actor="op", reason="test")
    assert g.version == 1
    g.enroll(person("a"), unit(rng, 2), actor="op", reason="test")
    assert g.version == 2
    g.enroll_many([(person("b"), unit(rng, 1)), (person("c"), unit(rng, 1))], actor="op", reason="bulk")
    assert g.version == 3
    g.search(unit(rng, 1), k=1)
    with pytest.raises(InputError):
        g.remove("zz", actor="op", reason="test")
    assert g.version == 3
    g.remove("a", actor="op", reason="test")
    assert g.version == 4


def test_audit_records_each_change_with_actor_reason_version_and_digest(make_gallery, rng):
    g = make_gallery()
    e1, e2 = unit(rng, 2), unit(rng, 3)
    g.enroll(person("a", "banned"), e1, actor="alice", reason="court order 17")
    g.enroll(person("a", "banned"), e2, actor="bob", reason="new photos")
    g.enroll_many([(person("b"), unit(rng, 1)), (person("c"), unit(rng, 1))], actor="carol", reason="import")
    g.remove("a", actor="dave", reason="order lifted")
    log = g.audit()
    assert [(e.action, e.person_id, e.actor, e.reason, e.version) for e in log] == [
        ("enroll", "a", "alice", "court order 17", 1),
        ("re-enroll", "a", "bob", "new photos", 2),
        ("enroll", "b", "carol", "import", 3),
        ("enroll", "c", "carol", "import", 3),
        ("remove", "a", "dave", "order lifted", 4),
    ]
    assert [e.n_embeddings for e in log] == [2, 3, 1, 1, 3]
    assert log[0].embeddings_sha256 == embeddings_sha256(e1)
    assert log[1].embeddings_sha256 == embeddings_sha256(e2) == log[4].embeddings_sha256
    assert log[0].watchlist == "banned"
    assert all(e.ts > 1_600_000_000 for e in log)


def test_batched_search_equals_one_query_at_a_time(make_gallery, rng):
    g = make_gallery()
    g.enroll_many([(person(f"p{i}"), unit(rng, 1 + i % 3)) for i in range(40)], actor="op", reason="bulk")
    queries = unit(rng, 16)
    batched = g.search(queries, k=4)
    single = [g.search(queries[i : i + 1], k=4)[0] for i in range(16)]
    assert [[h.person_id for h in q] for q in batched] == [[h.person_id for h in q] for q in single]


def test_enroll_many_rejects_duplicate_ids_in_one_batch(make_gallery, rng):
    g = make_gallery()
    with pytest.raises(InputError, match=r"expected each person_id once per batch, got duplicates \['a'\]"):
        g.enroll_many([(person("a"), unit(rng, 1)), (person("a"), unit(rng, 1))], actor="op", reason="bulk")
    assert g.version == 0


# ------------------------------------------------------------------------------------------ FAISS only


def test_persistence_round_trip_gives_same_persons_and_identical_results(tmp_path, rng):
    g = FaissGallery(path=tmp_path, dim=DIM)
    g.enroll_many([(person(f"p{i}"), unit(rng, 1 + i % 2)) for i in range(50)], actor="op", reason="bulk")
    g.remove("p7", actor="op", reason="test")
    g.enroll(person("p3", "vip"), unit(rng, 2), actor="op", reason="test")
    queries = unit(rng, 20)
    g2 = FaissGallery(path=tmp_path, dim=DIM)
    assert g2.version == g.version == 3
    assert g2.persons() == g.persons()
    assert g2.search(queries, k=5) == g.search(queries, k=5)
    assert g2.audit() == g.audit() and len(g2.audit()) == 52
    assert json.loads((tmp_path / "persons.json").read_text())["format_version"] == fg.FORMAT_VERSION
    assert sorted(p.name for p in tmp_path.glob("embeddings.*.npy")) == ["embeddings.00000003.npy"]


def test_reload_if_changed_sees_changes_made_by_another_instance(tmp_path, rng):
    matcher = FaissGallery(path=tmp_path, dim=DIM, index="hnsw")
    cli = FaissGallery(path=tmp_path, dim=DIM, index="hnsw")
    assert matcher.reload_if_changed() is False
    emb = unit(rng, 1)
    cli.enroll(person("newcomer"), emb, actor="cli", reason="test")
    assert matcher.search(emb, k=1) == [[]]
    assert matcher.reload_if_changed() is True
    assert matcher.version == 1
    assert matcher.search(emb, k=1)[0][0].person_id == "newcomer"
    assert matcher.reload_if_changed() is False
    cli.enroll(person("second"), unit(rng, 2), actor="cli", reason="test")  # append: HNSW extended in place
    cli.remove("newcomer", actor="cli", reason="test")  # removal: rebuilt
    assert matcher.reload_if_changed() is True
    assert [p.person_id for p in matcher.persons()] == ["second"]
    assert matcher.search(emb, k=5)[0][0].person_id == "second"


def test_stale_writer_catches_up_instead_of_overwriting_another_writers_change(tmp_path, rng):
    a = FaissGallery(path=tmp_path, dim=DIM)
    b = FaissGallery(path=tmp_path, dim=DIM)
    a.enroll(person("from-a"), unit(rng, 1), actor="a", reason="test")
    b.enroll(person("from-b"), unit(rng, 1), actor="b", reason="test")  # b never reloaded explicitly
    assert b.version == 2
    assert sorted(p.person_id for p in FaissGallery(path=tmp_path, dim=DIM).persons()) == ["from-a", "from-b"]


WRITER = textwrap.dedent(
    """
    import pathlib, sys, time, numpy as np
    sys.path.insert(0, {src!r})
    from argus.gallery import FaissGallery, Person
    g = FaissGallery(path={path!r}, dim={dim})
    rng = np.random.default_rng(int(sys.argv[1]))
    barrier = pathlib.Path({path!r}).parent
    (barrier / f"ready-{{sys.argv[1]}}").touch()
    deadline = time.monotonic() + 30
    while len(list(barrier.glob("ready-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)  # start writing together, so the two really contend for the lock
    for i in range(15):
        x = rng.standard_normal((1, {dim})).astype(np.float32)
        g.enroll(Person(person_id=f"w{{sys.argv[1]}}-{{i}}", display_name="W"), x / np.linalg.norm(x),
                 actor=f"proc{{sys.argv[1]}}", reason="concurrency test")
    """
)


def test_concurrent_writer_processes_never_lose_a_change(tmp_path):
    path = tmp_path / "gallery"
    script = WRITER.format(src=SRC, path=str(path), dim=DIM)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(seed)]) for seed in (1, 2)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    g = FaissGallery(path=path, dim=DIM)
    assert len(g) == 30 and g.version == 30
    log = read_audit(path)
    assert [e.version for e in log] == list(range(1, 31))
    assert sorted(e.actor for e in log) == ["proc1"] * 15 + ["proc2"] * 15


@pytest.mark.parametrize("where", ["embeddings-half-written", "commit-rename-fails"])
def test_write_failing_midway_leaves_old_gallery_loadable(tmp_path, rng, monkeypatch, where):
    g = FaissGallery(path=tmp_path, dim=DIM)
    g.enroll_many([(person(f"p{i}"), unit(rng, 1)) for i in range(5)], actor="op", reason="bulk")
    queries = unit(rng, 4)
    before = g.search(queries, k=3)

    if where == "embeddings-half-written":
        real_save = np.save

        def save_half_then_fail(f, arr, allow_pickle=False):  # a full disk: part of the bytes, then ENOSPC
            real_save(f, arr[: len(arr) // 2], allow_pickle=allow_pickle)
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(fg.np, "save", save_half_then_fail)
    else:
        real_replace = os.replace

        def replace_fails_for_persons(src, dst):
            if Path(dst).name == fg.PERSONS_FILE:
                raise OSError(5, "Input/output error")
            real_replace(src, dst)

        monkeypatch.setattr(fg.os, "replace", replace_fails_for_persons)

    with pytest.raises(StoreError, match=r"write failed"):
        g.enroll(person("late"), unit(rng, 1), actor="op", reason="test")
    monkeypatch.undo()

    assert g.version == 1 and g.get("late") is None and g.search(queries, k=3) == before
    fresh = FaissGallery(path=tmp_path, dim=DIM)
    assert fresh.version == 1 and len(fresh) == 5
    assert fresh.search(queries, k=3) == before
    assert [e.version for e in fresh.audit()] == [1] * 5  # the failed change left no audit entry
    g.enroll(person("late"), unit(rng, 1), actor="op", reason="retry")
    assert FaissGallery(path=tmp_path, dim=DIM).version == 2
    assert not list(tmp_path.glob(".*.tmp"))


def test_process_killed_just_before_commit_leaves_old_gallery_and_next_write_cleans_up(tmp_path, rng):
    g = FaissGallery(path=tmp_path, dim=DIM)
    g.enroll(person("before"), unit(rng, 1), actor="op", reason="test")
    crasher = textwrap.dedent(
        f"""
        import os, sys, numpy as np
        sys.path.insert(0, {SRC!r})
        from argus.gallery import FaissGallery, Person
        from argus.gallery import faiss_gallery as fg
        real = os.replace
        def die_on_commit(src, dst):
            if os.path.basename(dst) == fg.PERSONS_FILE:
                os._exit(9)  # a hard crash: no exception handler or cleanup runs
            real(src, dst)
        fg.os.replace = die_on_commit
        g = FaissGallery(path={str(tmp_path)!r}, dim={DIM})
        x = np.full((1, {DIM}), 1 / np.sqrt({DIM}), np.float32)
        g.enroll(Person(person_id="never", display_name="N"), x, actor="op", reason="crash")
        """
    )
    assert subprocess.run([sys.executable, "-c", crasher], timeout=60).returncode == 9
    assert (tmp_path / "embeddings.00000002.npy").exists()  # the orphan of the crashed write
    assert list(tmp_path.glob(".persons.json.*.tmp"))  # its unrenamed commit file
    assert g.reload_if_changed() is False
    fresh = FaissGallery(path=tmp_path, dim=DIM)
    assert [p.person_id for p in fresh.persons()] == ["before"] and fresh.version == 1
    fresh.enroll(person("after"), unit(rng, 1), actor="op", reason="test")
    assert sorted(p.name for p in tmp_path.glob("embeddings.*.npy")) == ["embeddings.00000002.npy"]
    assert not list(tmp_path.glob(".*.tmp"))
    assert [p.person_id for p in FaissGallery(path=tmp_path, dim=DIM).persons()] == ["before", "after"]


def test_corrupt_or_foreign_gallery_files_are_refused_with_clear_errors(tmp_path, rng):
    g = FaissGallery(path=tmp_path, dim=DIM)
    g.enroll(person("a"), unit(rng, 1), actor="op", reason="test")
    with pytest.raises(ConfigError, match=r"expected dim 64 \(configured\), got 128 on disk"):
        FaissGallery(path=tmp_path, dim=64)
    emb_file = tmp_path / "embeddings.00000001.npy"
    np.save(emb_file, unit(rng, 1))
    with pytest.raises(StoreError, match=r"embeddings.00000001.npy: expected sha256"):
        FaissGallery(path=tmp_path, dim=DIM)
    meta = json.loads((tmp_path / "persons.json").read_text())
    meta["format_version"] = fg.FORMAT_VERSION + 1
    (tmp_path / "persons.json").write_text(json.dumps(meta))
    newer = fg.FORMAT_VERSION + 1
    with pytest.raises(StoreError, match=rf"expected format_version <= {fg.FORMAT_VERSION} .* got {newer}"):
        FaissGallery(path=tmp_path, dim=DIM)


def test_bad_configuration_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"expected one of \('flat', 'hnsw', 'ivf'\), got 'lsh'"):
        FaissGallery(path=tmp_path, dim=DIM, index="lsh")
    with pytest.raises(ConfigError, match=r"expected an integer >= 1, got 0"):
        FaissGallery(path=tmp_path, dim=0)
    if fg.faiss.get_num_gpus() == 0:
        with pytest.raises(ConfigError, match=r"expected a faiss-gpu build with >= 1 visible GPU, got 0"):
            FaissGallery(path=tmp_path, dim=DIM, use_gpu=True)
        assert FaissGallery(path=tmp_path, dim=DIM).uses_gpu is False


def test_faiss_flat_agrees_with_numpy_reference_on_5k_gallery(tmp_path, rng):
    items = [(person(f"p{i}"), unit(rng, 1 + (i % 4 == 0))) for i in range(4000)]  # 5000 rows, 4000 persons
    mem, fai = MemoryGallery(dim=DIM), FaissGallery(path=tmp_path, dim=DIM)
    for g in (mem, fai):
        g.enroll_many(items, actor="op", reason="bulk")
    queries = unit(rng, 1000)
    ref, got = mem.search(queries, k=5), fai.search(queries, k=5)
    top1_same = sum(r[0].person_id == f[0].person_id for r, f in zip(ref, got, strict=True))
    assert top1_same == 1000
    for r, f in zip(ref, got, strict=True):
        assert [c.person_id for c in r] == [c.person_id for c in f]
        np.testing.assert_allclose([c.score for c in r], [c.score for c in f], atol=1e-5)


def test_hnsw_recall_at_1_on_20k_identities(tmp_path, rng):
    n = 20_000
    gallery = unit(rng, n)
    hnsw = FaissGallery(path=tmp_path, dim=DIM, index="hnsw")
    hnsw.enroll_many([(person(f"p{i}"), gallery[i : i + 1]) for i in range(n)], actor="op", reason="bulk")
    truth = rng.choice(n, size=500, replace=False)
    probes = near(rng, gallery[truth], noise=0.06)
    exact = np.argmax(probes @ gallery.T, axis=1)  # the true nearest (a probe may sit nearer someone else)
    got = [hits[0].person_id for hits in hnsw.search(probes, k=1)]
    recall = np.mean([g == f"p{e}" for g, e in zip(got, exact, strict=True)])
    assert recall >= 0.99


# ------------------------------------------------------------------------------------------ operator API (issue 13)


@pytest.mark.parametrize("pid", ["P-100", "case/2026:17", "Ab.9_x", "x" * 128])
def test_person_ids_as_records_systems_write_them_enroll_search_and_remove(make_gallery, rng, pid):
    g = make_gallery()
    emb = unit(rng, 2)
    g.enroll(Person(person_id=pid, display_name="Someone"), emb[:1], actor="op", reason="test")
    g.enroll(person("other"), emb[1:], actor="op", reason="test")
    assert g.search(emb[:1], k=1)[0][0].person_id == pid
    assert g.get(pid) is not None and g.audit()[0].person_id == pid
    g.remove(pid, actor="op", reason="test")
    assert g.get(pid) is None


@pytest.mark.parametrize("pid", ["../x", "", "x" * 129, "a\n", "a b", "-lead", "p\x00"])
def test_person_ids_outside_the_person_id_rule_are_refused_naming_the_rule(pid):
    with pytest.raises(InputError, match=r"person_id: expected a person id \(letters, digits .* got "):
        Person(person_id=pid, display_name="x")


def test_watchlist_names_stay_slugs():
    with pytest.raises(InputError, match=r"watchlist: expected a slug"):
        Person(person_id="P-1", display_name="x", watchlist="Case/1")


def test_a_person_is_active_until_their_expiry_and_not_at_it():
    p = Person(person_id="P-1", display_name="x", expires_at=1000.0)
    assert p.active(999.9) and not p.active(1000.0) and not p.active(2000.0)
    assert Person(person_id="P-1", display_name="x").active(1e12)
    with pytest.raises(InputError, match=r"expires_at of P-1: expected epoch seconds >= 0 or None, got -1"):
        Person(person_id="P-1", display_name="x", expires_at=-1)


def test_update_person_changes_only_what_is_given_and_is_audited(make_gallery, rng):
    g = make_gallery()
    emb = unit(rng, 2)
    g.enroll(Person(person_id="P-1", display_name="Ann", notes="n0", expires_at=5e9), emb, actor="op",
             reason="order 1")
    before = g.search(emb, k=1)
    p = g.update_person("P-1", display_name="Ann B.", actor="bob", reason="typo")
    assert (p.display_name, p.notes, p.expires_at, p.watchlist) == ("Ann B.", "n0", 5e9, "default")
    assert g.get("P-1") == p and g.version == 2
    p = g.update_person("P-1", expires_at=None, watchlist="vip", actor="bob", reason="order extended")
    assert (p.display_name, p.expires_at, p.watchlist) == ("Ann B.", None, "vip")
    p = g.update_person("P-1", expires_at=6e9, notes="", actor="bob", reason="order limited")
    assert (p.expires_at, p.notes, p.enrolled_at) == (6e9, "", g.get("P-1").enrolled_at)  # type: ignore[union-attr]
    after = g.search(emb, k=1)
    assert [[(c.person_id, c.score) for c in q] for q in after] == [[(c.person_id, c.score) for c in q]
                                                                    for q in before]  # embeddings untouched
    assert after[0][0].watchlist == "vip" and after[0][0].display_name == "Ann B."
    log = g.audit()
    assert [(e.action, e.actor, e.reason, e.version, e.n_embeddings) for e in log[1:]] == [
        ("update", "bob", "typo", 2, 2), ("update", "bob", "order extended", 3, 2),
        ("update", "bob", "order limited", 4, 2)]
    assert log[3].embeddings_sha256 == embeddings_sha256(emb) and log[2].watchlist == "vip"


def test_update_person_refuses_unknown_ids_bad_fields_and_no_change(make_gallery, rng):
    g = make_gallery()
    g.enroll(person("P-1"), unit(rng, 1), actor="op", reason="test")
    with pytest.raises(InputError, match=r"update_person: expected an enrolled person_id .* got unknown 'ghost'"):
        g.update_person("ghost", notes="x", actor="op", reason="test")
    with pytest.raises(InputError, match=r"expected at least one field to change, got none"):
        g.update_person("P-1", actor="op", reason="test")
    with pytest.raises(InputError, match=r"watchlist: expected a slug"):
        g.update_person("P-1", watchlist="No Slug", actor="op", reason="test")
    with pytest.raises(InputError, match=r"expires_at of P-1: expected epoch seconds"):
        g.update_person("P-1", expires_at=float("nan"), actor="op", reason="test")
    with pytest.raises(InputError, match=r"reason: expected a non-empty string"):
        g.update_person("P-1", notes="x", actor="op", reason="")
    assert g.version == 1 and len(g.audit()) == 1


def test_watchlist_specs_are_set_listed_stamped_versioned_and_audited(make_gallery):
    g = make_gallery()
    assert g.watchlists() == [] and g.watchlist("vip") is None
    g.set_watchlist(WatchlistSpec(name="vip", threshold=0.95, description="VIPs", legal_basis="policy 4"),
                    actor="alice", reason="new list")
    g.set_watchlist(WatchlistSpec(name="banned", threshold=None), actor="bob", reason="new list")
    g.set_watchlist(WatchlistSpec(name="vip", threshold=0.97, legal_basis="policy 5"), actor="carol",
                    reason="stricter")
    assert [w.name for w in g.watchlists()] == ["banned", "vip"]
    vip = g.watchlist("vip")
    assert vip is not None and (vip.threshold, vip.description, vip.legal_basis, vip.updated_by) == (
        0.97, "", "policy 5", "carol")
    assert vip.updated_at > 1_600_000_000  # stamped by the gallery, not taken from the caller
    assert g.version == 3
    assert [(e.action, e.watchlist, e.person_id, e.actor, e.version) for e in g.audit()] == [
        ("watchlist", "vip", "", "alice", 1), ("watchlist", "banned", "", "bob", 2),
        ("watchlist", "vip", "", "carol", 3)]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"name": "VIP list", "threshold": 0.9}, r"watchlist name: expected a slug"),
    ({"name": "vip", "threshold": 1.5}, r"threshold of watch-list vip: expected a cosine in \[-1, 1\] or None, "
                                       r"got 1.5"),
    ({"name": "vip", "threshold": True}, r"expected a cosine .* got True"),
    ({"name": "vip", "threshold": 0.9, "legal_basis": 7}, r"legal_basis of watch-list vip: expected a string"),
])
def test_bad_watchlist_specs_are_refused(kwargs, message):
    with pytest.raises(InputError, match=message):
        WatchlistSpec(**kwargs)


def test_negative_evidence_is_kept_per_person_audited_with_its_alert_and_removed_with_the_person(make_gallery, rng):
    g = make_gallery()
    g.enroll(person("P-1"), unit(rng, 2), actor="op", reason="test")
    g.enroll(person("P-2"), unit(rng, 1), actor="op", reason="test")
    assert g.negatives("P-1").shape == (0, DIM) and g.negatives("ghost").shape == (0, DIM)
    n1, n2 = unit(rng, 2), unit(rng, 1)
    g.add_negative("P-1", n1, actor="ana", reason="not this person", ref="alert-1")
    g.add_negative("P-1", n2, actor="ana", reason="not this person", ref="alert-2")
    np.testing.assert_array_equal(g.negatives("P-1"), np.vstack([n1, n2]))
    assert g.negatives("P-2").shape == (0, DIM) and g.version == 4
    neg = [e for e in g.audit() if e.action == "negative"]
    assert [(e.person_id, e.ref, e.n_embeddings, e.embeddings_sha256, e.version) for e in neg] == [
        ("P-1", "alert-1", 2, embeddings_sha256(n1), 3), ("P-1", "alert-2", 1, embeddings_sha256(n2), 4)]
    g.enroll(person("P-1"), unit(rng, 1), actor="op", reason="new photo")
    assert g.negatives("P-1").shape == (3, DIM)  # new photos do not clear what the person is not
    g.remove("P-1", actor="op", reason="test")
    g.enroll(person("P-1"), unit(rng, 1), actor="op", reason="back")
    assert g.negatives("P-1").shape == (0, DIM)  # removed with the person


def test_negative_evidence_refuses_unknown_persons_bad_rows_and_a_missing_ref(make_gallery, rng):
    g = make_gallery()
    g.enroll(person("P-1"), unit(rng, 1), actor="op", reason="test")
    with pytest.raises(InputError, match=r"add_negative: expected an enrolled person_id .* got unknown 'ghost'"):
        g.add_negative("ghost", unit(rng, 1), actor="op", reason="t", ref="a1")
    with pytest.raises(InputError, match=r"negatives of P-1: expected dtype float32, got float64"):
        g.add_negative("P-1", unit(rng, 1).astype(np.float64), actor="op", reason="t", ref="a1")
    with pytest.raises(InputError, match=r"negatives of P-1: expected at least one row"):
        g.add_negative("P-1", np.zeros((0, DIM), np.float32), actor="op", reason="t", ref="a1")
    with pytest.raises(InputError, match=r"ref: expected the alert id the evidence came from, got ''"):
        g.add_negative("P-1", unit(rng, 1), actor="op", reason="t", ref="")
    assert g.version == 1


def test_erase_removes_everything_of_the_person_and_redacts_the_audit_log(make_gallery, rng):
    g = make_gallery()
    pid = "case/2026:17"
    token = "erased:" + hashlib.sha256(pid.encode()).hexdigest()[:16]
    g.enroll(Person(person_id=pid, display_name="Eve"), unit(rng, 3), actor="op", reason=f"enroll {pid}")
    g.enroll(person("P-10"), unit(rng, 1), actor="op", reason="mentions case/2026:170, not the same id")
    g.add_negative(pid, unit(rng, 2), actor="ana", reason="not this person", ref="alert-9")
    g.update_person(pid, notes="x", actor="op", reason="note")
    counts = g.erase(pid, actor="dpo", reason=f"erasure request for {pid}")
    assert counts == {"embeddings": 3, "negatives": 2, "audit_entries_redacted": 3}
    assert g.get(pid) is None and g.negatives(pid).shape == (0, DIM) and len(g) == 1
    log = g.audit()
    assert all(pid not in json.dumps(e.to_dict()).replace("case/2026:170", "") for e in log)
    assert [(e.action, e.person_id) for e in log] == [("enroll", token), ("enroll", "P-10"), ("negative", token),
                                                       ("update", token), ("erase", token)]
    assert log[0].reason == f"enroll {token}" and log[-1].reason == f"erasure request for {token}"
    assert log[1].reason == "mentions case/2026:170, not the same id"  # a longer id is not this person
    assert (log[-1].n_embeddings, log[-1].actor, log[-1].version) == (3, "dpo", 5)
    with pytest.raises(InputError, match=r"erase: expected a person_id that is enrolled or named in the audit "
                                         r"log, got unknown 'ghost'"):
        g.erase("ghost", actor="dpo", reason="test")
    with pytest.raises(InputError, match=r"person_id: expected a person id"):
        g.erase("../x", actor="dpo", reason="test")


def test_a_person_removed_earlier_can_still_be_erased_from_the_audit_log(make_gallery, rng):
    g = make_gallery()
    g.enroll(person("P-1"), unit(rng, 1), actor="op", reason="test")
    g.remove("P-1", actor="op", reason="test")
    assert g.erase("P-1", actor="dpo", reason="request") == {"embeddings": 0, "negatives": 0,
                                                              "audit_entries_redacted": 2}
    assert all(e.person_id != "P-1" for e in g.audit())
    with pytest.raises(InputError, match=r"got unknown 'P-1'"):  # nothing left to erase
        g.erase("P-1", actor="dpo", reason="again")


# ------------------------------------------------------------------------------------------ FAISS: persisted


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_expiry_specs_and_negatives_survive_a_reopen_and_hot_reload_into_another_instance(tmp_path, rng, kind):
    writer = FaissGallery(path=tmp_path, dim=DIM, index=kind)
    reader = FaissGallery(path=tmp_path, dim=DIM, index=kind)
    emb, neg = unit(rng, 2), unit(rng, 2)
    writer.enroll(Person(person_id="P-1", display_name="A", expires_at=5e9), emb[:1], actor="op", reason="t")
    writer.enroll(person("case/7:1"), emb[1:], actor="op", reason="t")
    assert reader.reload_if_changed() is True
    index = writer._index
    writer.update_person("P-1", expires_at=6e9, actor="op", reason="extended")
    writer.set_watchlist(WatchlistSpec(name="vip", threshold=0.97, legal_basis="order 5"), actor="op", reason="t")
    writer.add_negative("case/7:1", neg, actor="op", reason="not him", ref="alert-3")
    assert writer._index is index  # metadata-only changes keep the index (HNSW rebuilds are slow)
    assert reader.reload_if_changed() is True and reader.version == writer.version == 5
    for g in (reader, FaissGallery(path=tmp_path, dim=DIM, index=kind)):
        assert g.get("P-1").expires_at == 6e9  # type: ignore[union-attr]
        assert g.watchlists() == writer.watchlists() and g.watchlist("vip").threshold == 0.97  # type: ignore[union-attr]
        np.testing.assert_array_equal(g.negatives("case/7:1"), neg)
        assert g.negatives("P-1").shape == (0, DIM)
        assert g.search(emb, k=1)[0][0].person_id == "P-1" and g.search(emb, k=1)[1][0].person_id == "case/7:1"
        assert g.audit() == writer.audit()
    assert sorted(p.name for p in tmp_path.glob("*.npy")) == ["embeddings.00000005.npy", "negatives.00000005.npy"]
    writer.remove("case/7:1", actor="op", reason="t")  # the last negatives go with the person: no file left
    assert sorted(p.name for p in tmp_path.glob("*.npy")) == ["embeddings.00000006.npy"]
    assert reader.reload_if_changed() is True and reader.negatives("case/7:1").shape == (0, DIM)


def test_after_erase_no_file_in_the_gallery_directory_contains_the_person_id(tmp_path, rng):
    pid, other = "case/2026:17", "P-100"
    g = FaissGallery(path=tmp_path, dim=DIM)
    reader = FaissGallery(path=tmp_path, dim=DIM)
    g.enroll(Person(person_id=pid, display_name="Eve", notes="seen at gate"), unit(rng, 2), actor="op",
             reason=f"court order for {pid}")
    g.enroll(Person(person_id=other, display_name="Bob"), unit(rng, 1), actor="op", reason="t")
    g.add_negative(pid, unit(rng, 1), actor="op", reason="not her", ref="alert-1")
    g.update_person(pid, expires_at=5e9, actor="op", reason="t")
    assert any(pid.encode() in f.read_bytes() for f in tmp_path.iterdir() if f.is_file())
    counts = g.erase(pid, actor="dpo", reason=f"art. 17 request: {pid}")
    assert counts == {"embeddings": 2, "negatives": 1, "audit_entries_redacted": 3}
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert pid.encode() not in f.read_bytes(), f"{f.name} still names the erased person"
            assert b"Eve" not in f.read_bytes()
    assert any(other.encode() in f.read_bytes() for f in tmp_path.iterdir() if f.is_file())
    assert reader.reload_if_changed() is True and reader.get(pid) is None and reader.get(other) is not None
    fresh = FaissGallery(path=tmp_path, dim=DIM)
    assert fresh.audit() == g.audit() and [e.action for e in fresh.audit()][-1] == "erase"
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_format_1_gallery_loads_with_no_expiry_specs_or_negatives(tmp_path, rng):
    g = FaissGallery(path=tmp_path, dim=DIM)
    emb = unit(rng, 1)
    g.enroll(person("p1"), emb, actor="op", reason="t")
    meta = json.loads((tmp_path / "persons.json").read_text())
    v1 = {k: v for k, v in meta.items()
          if k not in {"watchlists", "negatives_file", "negatives_sha256", "negative_rows", "negatives"}}
    v1["format_version"] = 1
    v1["persons"] = [{k: v for k, v in p.items() if k != "expires_at"} for p in v1["persons"]]
    (tmp_path / "persons.json").write_text(json.dumps(v1))
    old = FaissGallery(path=tmp_path, dim=DIM)
    assert old.get("p1") == person("p1") and old.watchlists() == [] and old.negatives("p1").shape == (0, DIM)
    assert old.search(emb, k=1)[0][0].person_id == "p1"
