"""Argus: watch-list face recognition over many camera streams.

The library holds everything the four services share; ``services/*`` are thin stages on top of it
and are discovered through the ``argus.stages`` entry point group, so this package never imports them.
"""

__version__ = "0.1.0"
