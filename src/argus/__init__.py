"""Argus: watch-list face recognition over many camera streams.

The library holds everything the four services share; ``services/*`` are thin stages on top of it
and are discovered through the ``argus.stages`` entry point group, so this package never imports them.
"""

import os

__version__ = "0.1.0"

#: The most pixels a decoded image may have: 8192 x 8192 (a 4K frame is 8.3 Mpx). A 54 KB JPEG whose header claims
#: 30000 x 30000 would otherwise make OpenCV allocate 2.7 GB and decode for ~14 s: one hostile message on the frames
#: topic could take an inference replica down. OpenCV reads the variable at its first decode, so it is set here,
#: before any Argus module can decode anything; an operator's own value wins.
MAX_IMAGE_PIXELS = 1 << 26
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_IMAGE_PIXELS))
