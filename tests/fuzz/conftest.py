"""The fuzz suite's guards: a corrupted JPEG header can claim a 30000×30000 image, which OpenCV would allocate
(2.7 GB) and decode for ~14 s; cap the pixels OpenCV accepts so a mutated header is refused, not a CI OOM."""

from __future__ import annotations

import os

# argus.imaging sets the same cap for the product (MAX_IMAGE_PIXELS); set here too in case a test decodes
# through OpenCV before importing argus.imaging
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(1 << 26))
