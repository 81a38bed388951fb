"""JPEG and colour-layout helpers with errors that say what the image was and why it was refused."""

from __future__ import annotations

import cv2
import numpy as np

from argus.errors import InputError


def as_bgr(img: np.ndarray, *, where: str = "image") -> np.ndarray:
    """Any grey (H×W, H×W×1), BGR or BGRA uint8 image → BGR; reject empty or odd layouts, naming ``where``.

    The one place frames are validated: both detectors and the pipeline call it, so every stage refuses the same
    inputs with the same words.
    """
    if not isinstance(img, np.ndarray):
        raise InputError(f"{where}: expected a numpy array, got {type(img).__name__}")
    if img.dtype != np.uint8:
        raise InputError(f"{where}: expected dtype uint8, got {img.dtype}")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] not in (3, 4)):
        raise InputError(f"{where}: expected shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), got {img.shape}")
    if img.shape[0] == 0 or img.shape[1] == 0:
        raise InputError(f"{where}: expected a non-empty image, got shape {img.shape}")
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    return img


JPEG_SOI = b"\xff\xd8"  # every JPEG starts with the start-of-image marker


def encode_jpeg(img: np.ndarray, *, quality: int = 85, where: str = "image") -> bytes:
    ok, buf = cv2.imencode(".jpg", as_bgr(img, where=where), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise InputError(f"{where}: JPEG encoding failed for shape {img.shape}")
    return buf.tobytes()


def decode_jpeg(data: bytes, *, where: str = "frame") -> np.ndarray:
    """Decode a frame off the bus: the wire schema says JPEG, so anything else (a PNG, a raw buffer) is refused
    by its first bytes rather than decoded by luck; corrupt or truncated JPEG is an InputError too."""
    if data[:2] != JPEG_SOI:
        raise InputError(f"{where}: expected JPEG (starting {JPEG_SOI!r}), got {len(data)} bytes starting {data[:4]!r}")
    return decode_image(data, where=where)


def decode_image(data: bytes, *, where: str = "image") -> np.ndarray:
    """Decode any format OpenCV reads (JPEG, PNG, …) to BGR; a corrupt or truncated payload is an InputError."""
    if not data:
        raise InputError(f"{where}: empty image payload")
    arr = np.frombuffer(data, dtype=np.uint8)
    try:
        img = cv2.imdecode(arr, cv2.IMREAD_COLOR)
    except cv2.error as e:
        raise InputError(f"{where}: undecodable image ({len(data)} bytes): {e}") from e
    if img is None or img.size == 0:
        raise InputError(f"{where}: corrupt or non-image payload ({len(data)} bytes, starts {data[:4]!r})")
    return img


def read_image(path: str, *, where: str | None = None) -> np.ndarray:
    """Read an image file as BGR (alpha dropped, grey expanded) with a clear error for missing/corrupt files."""
    label = where or str(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise InputError(f"{label}: cannot read file: {e.strerror}") from e
    return decode_image(data, where=label)
