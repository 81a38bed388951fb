import time

import msgpack
import numpy as np
import pytest
import wire

from argus.errors import SchemaError
from argus.schemas import (
    AlertV3,
    FacesV3,
    FaceV3,
    FrameV2,
    MatchesV3,
    Quality,
    decode,
    embedding_bytes,
    embedding_from_bytes,
    encode,
)


def _frame(**kw: object) -> FrameV2:
    base = dict(camera_id="gate-1", seq=7, ts_capture=time.time(), ts_ingest=time.time(), width=640, height=360,
                jpeg=b"\xff\xd8\xff\xe0JFIF")
    base.update(kw)
    return FrameV2(**base)  # type: ignore[arg-type]


def _faces() -> FacesV3:
    emb = np.random.default_rng(0).standard_normal(128).astype(np.float32)
    emb /= np.linalg.norm(emb)
    face = FaceV3(index=0, track_id="gate-1:7:0", track_state="tentative", face_score=0.8, box=(1, 2, 3, 4),
                  landmarks=tuple(range(10)), det_score=0.99, quality=Quality(size=80, blur=120), embedded=True,
                  embedding=embedding_bytes(emb), emotion=(0.1,) * 7, crop_jpeg=b"\xff\xd8")
    return FacesV3(camera_id="gate-1", seq=7, ts_capture=time.time(), ts_infer=time.time(), frame_width=640,
                   frame_height=360, detector="mtcnn", embedder="dlib-resnet", faces=(face,))


def test_frame_round_trips_through_the_wire_codec_with_jpeg_bytes_intact():
    f = _frame()
    assert decode(encode(f), FrameV2) == f
    assert f.key() == b"gate-1"


def test_embedding_travels_as_binary_float32_not_json_floats():
    msg = _faces()
    data = encode(msg)
    back = decode(data, FacesV3)
    np.testing.assert_array_equal(back.faces[0].embedding_array(), msg.faces[0].embedding_array())
    assert msg.faces[0].embedding in data  # the 512 raw float32 bytes, verbatim
    assert len(data) < 1200  # JSON floats alone would need ~2.5 kB


def test_unknown_schema_version_is_rejected_naming_both_versions():
    raw = msgpack.unpackb(encode(_frame()))
    raw["schema_id"] = "argus.frames.v3"
    with pytest.raises(SchemaError, match=r"expected schema 'argus.frames.v2', got 'argus.frames.v3'"):
        decode(msgpack.packb(raw), FrameV2)


def test_garbage_bytes_are_a_schema_error_not_a_library_traceback():
    with pytest.raises(SchemaError, match="not a MessagePack message"):
        decode(b"\xc1\x00garbage", FrameV2)
    with pytest.raises(SchemaError, match="expected a map"):
        decode(msgpack.packb([1, 2, 3]), FrameV2)


def test_malformed_field_is_named_in_the_error():
    raw = msgpack.unpackb(encode(_frame()))
    raw["seq"] = -1
    with pytest.raises(SchemaError, match=r"seq: .*greater than or equal to 0"):
        decode(msgpack.packb(raw), FrameV2)
    raw = msgpack.unpackb(encode(_frame()))
    raw["camera_id"] = "Bad Camera!"
    with pytest.raises(SchemaError, match="camera_id"):
        decode(msgpack.packb(raw), FrameV2)


def test_unknown_extra_field_is_rejected():
    raw = msgpack.unpackb(encode(_frame()))
    raw["person_id"] = "x"
    with pytest.raises(SchemaError, match="person_id"):
        decode(msgpack.packb(raw), FrameV2)


def test_message_of_another_topic_is_rejected():
    with pytest.raises(SchemaError, match="expected schema 'argus.matches.v3', got 'argus.faces.v3'"):
        decode(encode(_faces()), MatchesV3)


def test_a_pre_track_v1_message_is_refused_with_what_to_do():
    raw = msgpack.unpackb(encode(_faces()))
    raw["schema_id"] = "argus.faces.v1"
    with pytest.raises(SchemaError, match=r"got 'argus.faces.v1': a pre-track version: drain the pipeline and "
                                          r"upgrade every stage together"):
        decode(msgpack.packb(raw), FacesV3)


@pytest.mark.parametrize("topic", ["faces", "matches", "alerts"])
def test_a_pre_ecrl_v2_message_is_refused_with_what_to_do(topic):
    raw = msgpack.unpackb(encode(_faces()))
    raw["schema_id"] = f"argus.{topic}.v2"
    expected = {"faces": FacesV3, "matches": MatchesV3, "alerts": AlertV3}[topic]
    with pytest.raises(SchemaError, match=rf"got 'argus.{topic}.v2': a pre-ECRL version .*drain the pipeline and "
                                          r"upgrade every stage together"):
        decode(msgpack.packb(raw), expected)


@pytest.mark.parametrize("ecrl", [(0.1,), (0.1, 0.6), (0.1, 0.6, 0.04, 0.0), (0.1, float("nan"), 0.04)])
def test_ecrl_features_are_none_or_exactly_three_finite_values(ecrl):
    raw = msgpack.unpackb(encode(_faces()))
    raw["faces"][0]["ecrl"] = list(ecrl)
    with pytest.raises(SchemaError, match="faces.0.ecrl: Value error, expected no ECRL features or 3 finite ones"):
        decode(msgpack.packb(raw), FacesV3)


def test_a_face_carries_its_ecrl_features_and_tta_views_across_the_wire():
    raw = msgpack.unpackb(encode(_faces()))
    raw["faces"][0].update(ecrl=[0.1, 0.6, -0.05], emotion_views=10)
    face = decode(msgpack.packb(raw), FacesV3).faces[0]
    assert face.emotion_views == 10
    feats = face.ecrl_features()
    assert feats is not None and (feats.brow_height, feats.brow_width) == pytest.approx((0.1, 0.6))
    assert feats.mouth_curvature == pytest.approx(-0.05)
    assert _faces().faces[0].ecrl_features() is None and _faces().faces[0].emotion_views == 1


def test_an_emotion_path_that_is_not_an_ecrl_path_is_refused():
    raw = msgpack.unpackb(encode(wire.matches("gate-1", 3, time.time())))
    raw["matches"][0]["emotion_path"] = "vibes"
    with pytest.raises(SchemaError, match="emotion_path: Value error, expected an emotion path"):
        decode(msgpack.packb(raw), MatchesV3)


def test_embedding_with_wrong_length_is_rejected():
    with pytest.raises(SchemaError, match="expected 128 float32 values, got 3"):
        embedding_from_bytes(np.zeros(3, np.float32).tobytes(), 128)
    with pytest.raises(SchemaError, match="multiple of 4"):
        embedding_from_bytes(b"\x00" * 5, 128)
