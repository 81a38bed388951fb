"""Each enrolment photo check on real photos through the real ONNX Runtime pipeline: what is refused, with which
words, and that the accepted ones come back with an embedding and a small face thumbnail."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from argus.enroll import (
    SAME_PERSON_CONSISTENCY,
    THUMBNAIL_PX,
    PhotoChecks,
    check_photos,
    read_bulk_source,
    read_photos,
)
from argus.errors import InputError
from argus.faces.pipeline import FacePipeline
from argus.imaging import decode_image, encode_jpeg, read_image


@pytest.fixture(scope="module")
def pipeline(ort_backend) -> FacePipeline:
    return FacePipeline(backend=ort_backend)


def photo(assets: Path, rel: str) -> tuple[str, bytes]:
    return rel, (assets / rel).read_bytes()


def test_a_clear_single_face_is_accepted_with_embedding_and_thumbnail(pipeline, assets):
    r = check_photos(pipeline, [photo(assets, "faces/obama.jpg")]).photos[0]
    assert r.accepted and r.code is None and r.reason == ""
    assert r.embedding is not None and r.embedding.shape == (128,)
    assert abs(float(np.linalg.norm(r.embedding)) - 1.0) < 1e-3
    assert r.thumbnail_jpeg is not None and r.thumbnail_jpeg[:2] == b"\xff\xd8"
    thumb = decode_image(r.thumbnail_jpeg)
    assert max(thumb.shape[:2]) <= THUMBNAIL_PX
    assert r.face_px is not None and r.face_px >= 200
    # a face in the thumbnail is found again (it is a crop around the face with margin)
    assert len(pipeline.process([cv2.resize(thumb, None, fx=2, fy=2)])[0]) == 1


def test_bytes_that_are_not_an_image_are_refused_by_upload_name(pipeline):
    r = check_photos(pipeline, [("passport.pdf", b"%PDF-1.4 not an image")]).photos[0]
    assert not r.accepted and r.code == "unreadable"
    assert r.reason.startswith("passport.pdf: not a readable image")


def test_a_file_that_cannot_be_read_is_refused_by_path(pipeline, tmp_path):
    named = read_photos([tmp_path / "missing.jpg"])
    r = check_photos(pipeline, named).photos[0]
    assert r.code == "unreadable" and str(tmp_path / "missing.jpg") in r.reason


def test_a_photo_without_a_face_is_refused(pipeline, assets):
    r = check_photos(pipeline, [photo(assets, "pyfeat/free-mountain-vector-01.jpg")]).photos[0]
    assert r.code == "no_face"
    assert r.reason.startswith("pyfeat/free-mountain-vector-01.jpg: no face found (expected exactly one")


def test_a_photo_with_several_faces_is_refused_with_the_count(pipeline, assets):
    r = check_photos(pipeline, [photo(assets, "pyfeat/multi_face.jpg")]).photos[0]
    assert r.code == "several_faces"
    assert "5 faces found (expected exactly one; crop the photo to one person)" in r.reason


def test_a_face_below_the_minimum_size_is_refused_with_its_size(pipeline, assets):
    # the astronaut's face is 89 px: accepted at the 40 px default, refused when 100 px are required
    ok = check_photos(pipeline, [photo(assets, "faces/astronaut.png")], PhotoChecks(min_face_px=40)).photos[0]
    small = check_photos(pipeline, [photo(assets, "faces/astronaut.png")], PhotoChecks(min_face_px=100)).photos[0]
    assert ok.accepted
    assert small.code == "too_small" and small.face_px is not None and 60 < small.face_px < 100
    assert f"face too small ({small.face_px:.0f} px, expected at least 100 px" in small.reason


def test_a_blurred_photo_is_refused_and_the_sharp_original_is_not(pipeline, assets):
    img = read_image(str(assets / "faces/obama.jpg"))
    blurred = encode_jpeg(cv2.GaussianBlur(img, (0, 0), 9))
    res = check_photos(pipeline, [("blurred.jpg", blurred), photo(assets, "faces/obama.jpg")],
                       PhotoChecks(consistency=None)).photos
    assert res[0].code == "too_blurry" and res[0].blur is not None and res[0].blur < 15.0
    assert "blurred.jpg: face too blurry (sharpness" in res[0].reason and "expected at least 15.0" in res[0].reason
    assert res[1].accepted and res[1].blur is not None and res[1].blur > 15.0


def test_a_photo_of_someone_else_among_the_photos_of_one_person_is_refused(pipeline, assets):
    rels = ["faces/obama.jpg", "faces/obama2.jpg", "faces/obama3.jpg", "faces/biden.jpg"]
    res = check_photos(pipeline, [photo(assets, r) for r in rels]).photos
    assert [r.accepted for r in res] == [True, True, True, False]
    assert res[3].code == "not_same_person" and res[3].consistency is not None
    assert res[3].consistency < SAME_PERSON_CONSISTENCY
    assert "faces/biden.jpg: does not look like the same person as the other photos" in res[3].reason
    assert all(r.consistency is not None and r.consistency >= SAME_PERSON_CONSISTENCY for r in res[:3])


def test_two_photos_of_different_people_are_both_refused_since_neither_can_be_trusted(pipeline, assets):
    res = check_photos(pipeline, [photo(assets, "faces/obama.jpg"), photo(assets, "faces/biden.jpg")]).photos
    assert [r.code for r in res] == ["not_same_person", "not_same_person"]
    assert any("the photos show more than one person" in r.reason for r in res)


def test_without_the_consistency_check_two_people_are_both_accepted(pipeline, assets):
    res = check_photos(pipeline, [photo(assets, "faces/obama.jpg"), photo(assets, "faces/biden.jpg")],
                       PhotoChecks(consistency=None))
    assert len(res.accepted) == 2 and res.embeddings().shape == (2, 128) and len(res.thumbnails()) == 2


def test_verdicts_keep_input_order_and_one_bad_photo_does_not_stop_the_rest(pipeline, assets):
    res = check_photos(pipeline, [("junk", b"xx"), photo(assets, "faces/obama.jpg"),
                                  photo(assets, "pyfeat/multi_face.jpg"), photo(assets, "faces/obama2.jpg")])
    assert [r.filename for r in res.photos] == ["junk", "faces/obama.jpg", "pyfeat/multi_face.jpg", "faces/obama2.jpg"]
    assert [r.accepted for r in res.photos] == [False, True, False, True]
    assert res.photos[0].to_dict()["code"] == "unreadable"


@pytest.mark.parametrize("bad", ["photo.jpg", [("a.jpg", b"x", "extra")], [(1, b"x")]])
def test_photos_that_are_not_name_bytes_pairs_are_an_input_error(pipeline, bad):
    with pytest.raises(InputError, match="expected"):
        check_photos(pipeline, bad)


@pytest.mark.parametrize("kw", [{"min_face_px": -1}, {"min_blur": "x"}, {"consistency": 1.5}])
def test_floors_out_of_range_are_refused(kw):
    with pytest.raises(InputError, match="expected"):
        PhotoChecks(**kw)


def test_a_detection_under_the_size_floor_does_not_make_a_photo_several_faces(ort_backend, assets):
    # MTCNN searching down to 60 px finds a 57 px false face next to Obama's 251 px one
    p = FacePipeline(backend=ort_backend, min_face_size=60)
    assert len(p.process([read_image(str(assets / "faces/obama.jpg"))])[0]) == 2
    r = check_photos(p, [photo(assets, "faces/obama.jpg")], PhotoChecks(min_face_px=60)).photos[0]
    assert r.accepted and r.face_px is not None and r.face_px > 200


def test_a_bulk_folder_is_one_person_per_sub_folder_with_every_file_a_photo(tmp_path, assets):
    for pid, rels in {"P-1": ["faces/obama.jpg", "faces/obama2.jpg"], "P-2": ["faces/biden.jpg"]}.items():
        (tmp_path / pid).mkdir()
        for r in rels:
            (tmp_path / pid / Path(r).name).write_bytes((assets / r).read_bytes())
    (tmp_path / "P-2" / "notes.txt").write_text("stray")
    (tmp_path / ".hidden").mkdir()
    persons, problems = read_bulk_source(tmp_path, watchlist="vip", expires_at=2e9)
    assert problems == []
    assert [(p.person_id, p.watchlist, p.expires_at, [f.name for f in p.photos]) for p in persons] == [
        ("P-1", "vip", 2e9, ["obama.jpg", "obama2.jpg"]), ("P-2", "vip", 2e9, ["biden.jpg", "notes.txt"])]


def test_a_bulk_manifest_gathers_rows_per_person_and_reports_bad_rows_by_number(tmp_path):
    (tmp_path / "m.csv").write_text(
        "person_id,display_name,watchlist,photo_path,expires_at\n"
        "P-1/a,Ann,vip,a1.jpg,2030-01-01T00:00:00\n"
        "P-2,,,/abs/b.jpg\n"
        "P-1/a,Other name,other,a2.jpg\n"
        "P-3,Cat,vip\n"
        "P-4,Dan,vip,d.jpg,next tuesday\n"
        ",Eve,vip,e.jpg\n")
    persons, problems = read_bulk_source(tmp_path / "m.csv")
    assert [(p.person_id, p.display_name, p.watchlist, p.photos) for p in persons] == [
        ("P-1/a", "Ann", "vip", (tmp_path / "a1.jpg", tmp_path / "a2.jpg")),
        ("P-2", "P-2", "default", (Path("/abs/b.jpg"),))]
    assert persons[0].expires_at == 1_893_456_000.0 and persons[1].expires_at is None
    assert problems == [
        "m.csv row 5: expected person_id, display_name, watchlist, photo_path[, expires_at], got 3 column(s)",
        "m.csv row 6: expected epoch seconds or an ISO-8601 time, got 'next tuesday'",
        "m.csv row 7: expected a person_id, got an empty cell"]


def test_a_bulk_source_that_does_not_exist_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="expected a folder or a CSV manifest"):
        read_bulk_source(tmp_path / "nope.csv")
