"""Wire messages for tests, built in one place so a schema change is one edit here."""

from __future__ import annotations

from argus.ids import event_id
from argus.schemas import CandidateV1, MatchesV3, Quality, TrackMatchV3

HAPPY = (0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0)


def track_match(camera_id: str, seq: int, *, person_id: str = "p1", track_id: str | None = None, revision: int = 1,
                matched: bool = True, face_index: int = 0, score: float = 0.95, emotion: tuple[float, ...] = HAPPY,
                emotion_label: str = "happy", emotion_path: str = "cnn", crop_jpeg: bytes = b"\xff\xd8",
                ts_first: float = 1_700_000_000.0, display_name: str | None = None,
                watchlist: str = "default") -> TrackMatchV3:
    name = display_name or person_id.upper()
    cand = CandidateV1(person_id=person_id, display_name=name, watchlist=watchlist, score=score)
    other = CandidateV1(person_id="p-other", display_name="Other", watchlist=watchlist, score=0.52)
    return TrackMatchV3(
        track_id=track_id or f"{camera_id}:{seq}:{face_index}", revision=revision, matched=matched,
        outcome="matched" if matched else "below_threshold", face_index=face_index,
        event_id=event_id(camera_id, seq, face_index), box=(10.0 + face_index, 20.0, 90.0, 120.5), det_score=0.99,
        quality=Quality(size=90, blur=100), emotion=emotion, emotion_label=emotion_label,
        emotion_path=emotion_path, crop_jpeg=crop_jpeg,
        person_id=person_id, display_name=name, watchlist=watchlist, score=score, threshold=0.9, margin=0.2,
        candidates=(cand, other), faces_seen=4, faces_embedded=3, faces_supporting=3, score_history=(0.93, score, 0.94),
        first_seq=seq, ts_first=ts_first,
    )


def matches(camera_id: str, seq: int, ts: float, *track_matches: TrackMatchV3, gallery_version: int = 1) -> MatchesV3:
    return MatchesV3(camera_id=camera_id, seq=seq, ts_capture=ts, ts_match=ts + 0.1, gallery_version=gallery_version,
                     matches=track_matches or (track_match(camera_id, seq),))
