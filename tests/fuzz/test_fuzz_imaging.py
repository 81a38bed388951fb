"""Fuzz frame/JPEG validation: ``decode_jpeg`` and ``decode_image`` return an (H, W, 3) uint8 image or raise
InputError, for arbitrary bytes and for truncated or corrupted real JPEGs (the astronaut, encoded by encode_jpeg)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fuzzing import FUZZ
from hypothesis import given
from hypothesis import strategies as st

from argus.errors import InputError
from argus.imaging import decode_image, decode_jpeg, encode_jpeg, read_image

ASTRONAUT = Path(__file__).resolve().parents[2] / "assets" / "faces" / "astronaut.png"
SEED = encode_jpeg(read_image(str(ASTRONAUT)), quality=85)
HEADER = SEED.find(b"\xff\xda") + 12  # up to the start of the entropy-coded scan: markers, tables, SOF dimensions
MARKERS = [bytes([0xFF, m]) for m in (0xD8, 0xD9, 0xDA, 0xDB, 0xC0, 0xC2, 0xC4, 0xDD, 0xE0, 0xFE, 0x00, 0xFF)]


def check(data: bytes, decoder) -> None:
    """The property: a BGR image, or InputError."""
    try:
        img = decoder(data)
    except InputError as e:
        assert str(e)
        return
    assert isinstance(img, np.ndarray) and img.dtype == np.uint8
    assert img.ndim == 3 and img.shape[2] == 3 and img.shape[0] > 0 and img.shape[1] > 0, img.shape


@st.composite
def corrupted_jpeg(draw: st.DrawFn) -> bytes:
    b = bytearray(SEED)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, HEADER) | st.integers(0, len(b)))  # half of the edits land in the header
        op = draw(st.sampled_from(["truncate", "flip", "overwrite", "insert", "delete", "marker"]))
        if op == "truncate":
            del b[at:]
        elif op == "flip":
            if at < len(b):
                b[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=16))
            b[at:at + len(chunk)] = chunk
        elif op == "insert":
            b[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del b[at:at + draw(st.integers(1, 64))]
        else:
            b[at:at + 2] = draw(st.sampled_from(MARKERS))
    return bytes(b)


@pytest.mark.parametrize("decoder", [decode_jpeg, decode_image], ids=lambda f: f.__name__)
@FUZZ
@given(data=st.binary(max_size=1024) | st.binary(max_size=256).map(lambda b: b"\xff\xd8" + b)
       | st.binary(max_size=256).map(lambda b: b"\x89PNG\r\n\x1a\n" + b))
def test_arbitrary_bytes_decode_to_an_image_or_input_error(decoder, data: bytes) -> None:
    check(data, decoder)


@pytest.mark.parametrize("decoder", [decode_jpeg, decode_image], ids=lambda f: f.__name__)
@FUZZ
@given(data=corrupted_jpeg())
def test_truncated_or_corrupted_jpeg_decodes_to_an_image_or_input_error(decoder, data: bytes) -> None:
    check(data, decoder)


def test_the_seed_itself_decodes() -> None:
    assert decode_jpeg(SEED).shape == (512, 512, 3)
