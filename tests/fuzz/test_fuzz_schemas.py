"""Fuzz the wire decoders: ``decode(bytes, T)`` returns a valid ``T`` or raises SchemaError, never anything else.

A decoded message is *valid* when the stage can use it, including writing it on to the next topic: it re-encodes and
round-trips. Inputs: arbitrary bytes, arbitrary MessagePack values, and valid messages with fields mutated (wrong
type, out of range, extra key, missing key, other schema ids including the retired v1 ones).
"""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from fuzzing import FUZZ, HOSTILE, VALUES
from hypothesis import given
from hypothesis import strategies as st

from argus.errors import SchemaError
from argus.ids import PERSON_ID_PATTERN
from argus.schemas import (
    MESSAGE_TYPES,
    PATHS,
    RETIRED_SCHEMAS,
    AlertV3,
    CandidateV1,
    DeadLetterV1,
    EndedTrackV2,
    FacesV3,
    FaceV3,
    FrameV2,
    LocationV1,
    MatchesV3,
    Quality,
    TrackMatchV3,
    decode,
    encode,
)

TYPES = [FrameV2, FacesV3, MatchesV3, AlertV3, DeadLetterV1]
SCHEMA_IDS = [*sorted(MESSAGE_TYPES), *sorted(RETIRED_SCHEMAS), "argus.frames.v3", "argus.faces.v3", "",
              "ARGUS.FRAMES.V1"]

# -- valid messages (no NaN, so == can check the round trip) -------------------------------------------------------
slug = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,63}", fullmatch=True)
person_id = st.from_regex(PERSON_ID_PATTERN.strip("^$"), fullmatch=True)
text = st.text(max_size=16)
nonempty = st.text(min_size=1, max_size=16)
count = st.integers(0, 2**63 - 1)
positive = st.floats(min_value=0, exclude_min=True, allow_nan=False)
real = st.floats(allow_nan=False)
unit = st.floats(0, 1)
blob = st.binary(max_size=64)
box = st.tuples(real, real, real, real)
seven = st.tuples(*[real] * 7)
quality = st.builds(Quality, size=st.floats(min_value=0, allow_nan=False), blur=st.floats(min_value=0, allow_nan=False))
candidate = st.builds(CandidateV1, person_id=person_id, display_name=text, watchlist=text, score=real)
frame_fields = dict(camera_id=slug, seq=count, ts_capture=positive)

frames = st.builds(FrameV2, **frame_fields, ts_ingest=positive, width=st.integers(1, 2**63 - 1),
                   height=st.integers(1, 2**63 - 1), jpeg=st.binary(min_size=4, max_size=64))
states = st.sampled_from(["tentative", "confirmed", "lost"])
paths = st.sampled_from(PATHS)
ecrl = st.one_of(st.just(()), st.tuples(*[st.floats(allow_nan=False, allow_infinity=False)] * 3))
face = st.builds(FaceV3, index=count, track_id=nonempty, track_state=states,
                 face_score=unit, box=box, landmarks=st.tuples(*[real] * 10), det_score=unit, quality=quality,
                 embedded=st.booleans(), embedding=blob, emotion=seven, crop_jpeg=blob, ecrl=ecrl,
                 emotion_views=st.integers(1, 2**63 - 1))
ended = st.builds(EndedTrackV2, track_id=nonempty, reason=text, first_seq=count, last_seq=count, hits=count)
faces = st.builds(FacesV3, **frame_fields, ts_infer=positive, frame_width=st.integers(1, 10**6),
                  frame_height=st.integers(1, 10**6), detector=text, embedder=text,
                  faces=st.lists(face, max_size=3).map(tuple), ended=st.lists(ended, max_size=2).map(tuple))
track_match = st.builds(
    TrackMatchV3, track_id=nonempty, revision=st.integers(1, 2**63 - 1), matched=st.booleans(), outcome=text,
    face_index=count, event_id=text, box=box, det_score=unit, quality=quality, emotion=seven, emotion_label=text,
    emotion_path=paths, crop_jpeg=blob, person_id=person_id, display_name=text, watchlist=text, score=real,
    threshold=real, margin=real,
    candidates=st.lists(candidate, max_size=3).map(tuple), faces_seen=st.integers(1, 2**63 - 1),
    faces_embedded=st.integers(1, 2**63 - 1), faces_supporting=count,
    score_history=st.lists(real, max_size=5).map(tuple), first_seq=count, ts_first=positive,
)
matches = st.builds(MatchesV3, **frame_fields, ts_match=positive, gallery_version=count,
                    matches=st.lists(track_match, min_size=1, max_size=2).map(tuple))
location = st.builds(LocationV1, lat=st.floats(-90, 90), lon=st.floats(-180, 180), address=text, zone=text)
alerts = st.builds(
    AlertV3, alert_id=text, event_id=text, track_id=text, revision=st.integers(1, 2**63 - 1), withdrawn=st.booleans(),
    faces_seen=st.integers(1, 2**63 - 1), faces_embedded=st.integers(1, 2**63 - 1), faces_supporting=count,
    score_history=st.lists(real, max_size=5).map(tuple), camera_id=slug, camera_name=text, location=location,
    person_id=person_id, display_name=text, watchlist=text, score=real, threshold=real, margin=real,
    candidates=st.lists(candidate, max_size=3).map(tuple), emotion=text, emotion_path=paths, emotion_probs=seven,
    det_score=unit,
    quality=quality, box=box, crop_jpeg=blob, seq=count, ts_capture=positive, ts_alert=positive, gallery_version=count,
)
dead_letters = st.builds(
    DeadLetterV1, camera_id=text, stage=text, source_topic=text, source_partition=st.integers(-(2**63), 2**63 - 1),
    source_offset=st.integers(-(2**63), 2**63 - 1), error_kind=text, error=text, ts=real, payload=blob,
)
VALID = {FrameV2: frames, FacesV3: faces, MatchesV3: matches, AlertV3: alerts, DeadLetterV1: dead_letters}


def check_decode(data: bytes, kind: type) -> None:
    """The property: a valid ``kind`` (it re-encodes and round-trips) or a SchemaError with a message."""
    try:
        msg = decode(data, kind)
    except SchemaError as e:
        assert str(e)
        return
    assert type(msg) is kind
    again = encode(msg)
    assert encode(decode(again, kind)) == again  # bytes, not ==: a decoded NaN score is still the same message


# -- mutation of a valid message's MessagePack map -----------------------------------------------------------------
def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    return v


def _paths(v: Any, at: tuple = ()) -> list[tuple]:
    """Every place in the nested map a value sits (dict keys and list indices)."""
    out: list[tuple] = []
    items = v.items() if isinstance(v, dict) else enumerate(v) if isinstance(v, list) else ()
    for k, x in items:
        out.append((*at, k))
        out.extend(_paths(x, (*at, k)))
    return out


def _containers(v: Any, at: tuple = ()) -> list[tuple]:
    out = [at] if isinstance(v, dict | list) else []
    items = v.items() if isinstance(v, dict) else enumerate(v) if isinstance(v, list) else ()
    for k, x in items:
        out.extend(_containers(x, (*at, k)))
    return out


def _at(v: Any, path: tuple) -> Any:
    for k in path:
        v = v[k]
    return v


def mutate(draw: st.DrawFn, raw: dict) -> dict:
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["replace", "hostile", "wrap", "delete", "extra", "schema"]))
        paths = _paths(raw)
        if op == "schema":
            raw["schema_id"] = draw(st.sampled_from(SCHEMA_IDS) | st.text(max_size=20) | VALUES)
        elif op == "extra":
            where = _at(raw, draw(st.sampled_from(_containers(raw))))
            value = draw(VALUES)
            if isinstance(where, dict):
                where[draw(st.text(max_size=12))] = value
            else:
                where.append(value)
        elif paths:
            path = draw(st.sampled_from(paths))
            parent = _at(raw, path[:-1])
            if op == "delete":
                del parent[path[-1]]
            elif op == "wrap":
                parent[path[-1]] = [parent[path[-1]]]
            else:
                parent[path[-1]] = draw(VALUES if op == "replace" else HOSTILE)
    return raw


def wire_input(kind: type) -> st.SearchStrategy[bytes]:
    """Arbitrary bytes, arbitrary MessagePack values (a map of the kind's fields with its schema id, or anything),
    and valid messages of the kind with one to three mutations."""
    fields = st.sampled_from(sorted(kind.model_fields)) | st.text(max_size=8)
    maps = st.dictionaries(fields, VALUES, max_size=8).map(lambda d: {"schema_id": kind.SCHEMA, **d})

    @st.composite
    def mutated(draw: st.DrawFn) -> Any:
        raw = _plain(msgpack.unpackb(encode(draw(VALID[kind])), raw=False))
        return mutate(draw, raw)

    packed = st.one_of(VALUES, maps, mutated(), mutated()).map(lambda v: msgpack.packb(v, use_bin_type=True))
    return st.binary(max_size=512) | packed


@pytest.mark.parametrize("kind", TYPES, ids=lambda t: t.__name__)
@FUZZ
@given(data=st.data())
def test_decode_returns_a_valid_message_or_raises_schema_error(kind: type, data: st.DataObject) -> None:
    check_decode(data.draw(wire_input(kind), label="wire bytes"), kind)


@pytest.mark.parametrize("kind", TYPES, ids=lambda t: t.__name__)
@FUZZ
@given(data=st.data())
def test_valid_messages_round_trip(kind: type, data: st.DataObject) -> None:
    msg = data.draw(VALID[kind], label="message")
    assert decode(encode(msg), kind) == msg


# -- regressions: the minimal inputs the properties found ------------------------------------------------------------
def test_an_integer_beyond_msgpack_range_is_a_schema_error_not_an_unencodable_message() -> None:
    # lax parsing read seq "18446744073709551616" (2**64, as a string) into an int; the decoded frame then raised
    # OverflowError when re-encoded (a stage crash, not a dead letter)
    raw = msgpack.unpackb(encode(FrameV2(camera_id="0", seq=0, ts_capture=1, ts_ingest=1, width=1, height=1,
                                         jpeg=b"\x00" * 4)))
    raw["seq"] = "18446744073709551616"
    with pytest.raises(SchemaError, match=r"seq: .*64-bit range"):
        decode(msgpack.packb(raw), FrameV2)
    raw["seq"] = str(2**64 - 1)  # the largest MessagePack integer still decodes
    assert decode(msgpack.packb(raw), FrameV2).seq == 2**64 - 1
