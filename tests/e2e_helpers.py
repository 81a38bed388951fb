"""Shared by the end-to-end tests: the demo's two cameras that show the enrolled man."""

from __future__ import annotations

import time
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEMO_CAMERAS = tomllib.loads((ROOT / "assets/demo/cameras.toml").read_text())["camera"]
CAMERA_IDS = ("north-gate", "market-square")  # both clips show the enrolled man


def cameras_toml(path: Path) -> Path:
    """The demo's two cameras that show the man, with absolute clip paths."""
    lines = []
    for cam in (c for c in DEMO_CAMERAS if c["id"] in CAMERA_IDS):
        url = (ROOT / "assets/demo" / cam["url"]).resolve()
        loc = cam["location"]
        lines += ["[[camera]]", f'id = "{cam["id"]}"', f'name = "{cam["name"]}"', f'url = "{url}"',
                  f'fps = {cam["fps"]}', "", "[camera.location]", f'lat = {loc["lat"]}', f'lon = {loc["lon"]}',
                  f'address = "{loc["address"]}"', f'zone = "{loc["zone"]}"', ""]
    path.write_text("\n".join(lines))
    return path


def wait(cond: Any, what: str, timeout_s: float = 300.0) -> None:
    """Poll ``cond`` until it holds; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


def topic_values(bootstrap: str, topic: str) -> list[bytes]:
    """Every record value on ``topic`` from the start, without joining a group: what the e2e tests count their alerts
    and duplicates by."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                             consumer_timeout_ms=3000, enable_auto_commit=False)
    try:
        return [r.value for r in consumer]
    finally:
        consumer.close()
