"""Constants and page helpers shared by the browser tests (a module of its own: two conftest.py files in the tree
make ``from conftest import`` ambiguous)."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from argus.runtime.resources import Resources

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"
PERSON = "P-100/pyfeat:man"
CAMERA_TZ = "Asia/Tokyo"  # far from the browser's Europe/London, so the two times differ visibly
VIEWPORT = {"width": 1366, "height": 768}
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
MAX_PHOTO_MB = 0.5  # small, so the over-size upload test sends well under a megabyte


@dataclass
class World:
    base: str
    res: Resources
    keys: dict[str, str]
    actors: dict[str, str]
    alerts: list[str] = field(default_factory=list)  # the pipeline's alerts for PERSON, newest first


def login(page: Any, world: World, role: str, key: str | None = None) -> None:
    page.goto(f"{world.base}/console/#/feed")
    page.fill("#login-token", key or world.keys[role])
    page.press("#login-token", "Enter")
    page.wait_for_selector("body[data-ready]", state="attached")


def screenshot(page: Any, name: str) -> None:
    if os.environ.get("ARGUS_NO_SCREENSHOTS"):
        return
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """``app`` under uvicorn in a thread on a free loopback port until the block ends; yields the base URL."""
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
