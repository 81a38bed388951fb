"""The data Argus ships: the Triton-layout model repository and the demo's assets (clips, photos, cameras.toml).

They are package data so an installed Argus finds them where it is installed, with no checkout around it: the
wheel carries ``argus_data/triton_models/`` and ``argus_data/assets/``. In a checkout the two entries here are
links to the repository's ``triton_models/`` and ``assets/`` (which stay where they are: tools, Dockerfiles and
tests use those paths), so the editable install serves the files being edited, never a stale copy.

This package is data only: it imports nothing from Argus, and Argus imports nothing else of the checkout.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__all__ = ["assets", "model_repository"]


def _packaged(name: str) -> Path:
    # files() is a pathlib.Path for a package installed as files (every wheel install, every checkout); Argus
    # hands these paths to ONNX Runtime and OpenCV, which need real files, so it is never installed zipped.
    return Path(str(files(__name__) / name))


def model_repository() -> Path:
    """The packaged Triton-layout model repository (``ARGUS_MODEL_REPOSITORY``'s default)."""
    return _packaged("triton_models")


def assets() -> Path:
    """The packaged demo assets: ``demo/cameras.toml`` and its clips, the watch-list photos, the stranger faces."""
    return _packaged("assets")
