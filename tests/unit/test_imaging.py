"""Frames on the bus are JPEG by schema; files on disk may be any format OpenCV reads."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from argus.errors import InputError
from argus.imaging import decode_image, decode_jpeg, encode_jpeg, read_image

ASSETS = Path(__file__).resolve().parents[2] / "assets"


def test_a_png_on_the_frames_topic_is_refused_by_its_first_bytes_but_decodes_as_an_image():
    img = read_image(str(ASSETS / "faces" / "astronaut.png"))
    ok, png = cv2.imencode(".png", img)
    assert ok
    with pytest.raises(InputError, match=r"camera 'c1' frame 7: expected JPEG .* starting b'\\x89PNG"):
        decode_jpeg(png.tobytes(), where="camera 'c1' frame 7")
    assert decode_image(png.tobytes()).shape == img.shape


@pytest.mark.parametrize(("payload", "why"), [
    (b"", "expected JPEG"),
    (b"\xff\xd8\xff\xe0garbage", "corrupt or non-image payload"),
])
def test_empty_or_corrupt_jpeg_is_an_input_error_naming_where(payload: bytes, why: str):
    with pytest.raises(InputError, match=f"frame 3: {why}"):
        decode_jpeg(payload, where="frame 3")


def test_a_real_jpeg_round_trips():
    img = read_image(str(ASSETS / "faces" / "astronaut.png"))
    assert decode_jpeg(encode_jpeg(img)).shape == img.shape


def test_a_jpeg_whose_header_claims_a_huge_image_is_refused_not_allocated():
    import struct

    img = read_image(str(ASSETS / "faces" / "astronaut.png"))
    bomb = bytearray(encode_jpeg(img))
    sof = bomb.find(b"\xff\xc0")
    struct.pack_into(">HH", bomb, sof + 5, 30000, 30000)  # 54 KB claiming 900 Mpx (2.7 GB decoded)
    with pytest.raises(InputError, match="frame 9: undecodable image"):
        decode_jpeg(bytes(bomb), where="frame 9")
