"""A small operator world for the operations tests (unit over SQLite + FAISS, integration over MongoDB): real photos
enrolled through the real pipeline, and alerts/sightings whose evidence crops are real aligned face crops."""

from __future__ import annotations

from pathlib import Path

from wire import matches, track_match

from argus.faces.pipeline import FacePipeline
from argus.imaging import encode_jpeg, read_image
from argus.schemas import AlertV3, CandidateV1, LocationV1
from argus.store.base import CameraRecord, EventStore, SightingEvent

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets"
T0 = 1_763_900_000.0
#: Ids with the characters the person-id rule allows beyond a slug, so escaping is exercised on the way.
OBAMA = "P-7731/obama"
BIDEN = "P-8802:biden"
OBAMA_PHOTOS = ("faces/obama.jpg", "faces/obama2.jpg", "faces/obama3.jpg")
ZONES = {"cam-north-1": "north", "cam-north-2": "north", "cam-south-1": "south"}


def photos(*rels: str) -> list[tuple[str, bytes | None]]:
    return [(r, (ASSETS / r).read_bytes()) for r in rels]


def aligned_crop_jpeg(pipeline: FacePipeline, rel: str) -> bytes:
    """The crop the inference stage would put on the wire for the one face of ``rel``: aligned 150 x 150 JPEG."""
    faces = pipeline.process([read_image(str(ASSETS / rel))])[0]
    assert len(faces) == 1
    return encode_jpeg(faces[0].crop, quality=90)


def put_cameras(store: EventStore) -> None:
    for cid, zone in ZONES.items():
        store.upsert_camera(CameraRecord(camera_id=cid, name=cid, location=LocationV1(
            lat=52.5, lon=13.4, address=f"{cid} street", zone=zone)))


def put_alert(store: EventStore, *, camera_id: str, person_id: str, seq: int, crop: bytes,
              runner_up: str | None = None, ts: float = T0) -> AlertV3:
    """An alert and the sighting that raised it, both naming ``person_id`` (``runner_up`` second in the candidates)."""
    tm = track_match(camera_id, seq, person_id=person_id, crop_jpeg=crop, display_name="Shown Name")
    if runner_up is not None:
        tm = tm.model_copy(update={"candidates": (tm.candidates[0], CandidateV1(
            person_id=runner_up, display_name="Runner Up", watchlist="default", score=0.6))})
    m = matches(camera_id, seq, ts + seq, tm, gallery_version=1)
    alert = AlertV3(
        alert_id=f"a-{camera_id}-{seq}", event_id=tm.event_id, camera_id=camera_id, camera_name=camera_id,
        location=LocationV1(lat=52.5, lon=13.4, address="x", zone=ZONES.get(camera_id, "none")),
        person_id=person_id, display_name=tm.display_name, watchlist=tm.watchlist, score=tm.score,
        threshold=tm.threshold, margin=tm.margin, candidates=tm.candidates, emotion=tm.emotion_label,
        emotion_probs=tm.emotion, det_score=tm.det_score, quality=tm.quality, box=tm.box, crop_jpeg=crop,
        seq=seq, ts_capture=m.ts_capture, ts_alert=m.ts_capture + 0.5, gallery_version=1,
    )
    store.put_events([SightingEvent.from_match(m, tm).with_alert(alert.alert_id)])
    store.put_alert(alert)
    return alert
