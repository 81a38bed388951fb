"""Shared by the tests that run `argus up` as a real process (tests/e2e/test_up.py, tests/browser): a cameras file,
the operator's clean environment, and the running process with its stdout read line by line."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "assets" / "pyfeat" / "noface_face.mov"
PHOTO = ROOT / "assets" / "pyfeat" / "single_face.jpg"

CAMERA = """
[[camera]]
id = "{id}"
name = "{name}"
url = "{url}"
fps = 5
{extra}
[camera.location]
lat = {lat}
lon = 13.40955
address = "Alexanderplatz {lat}, Berlin"
zone = "north"
"""


def cameras_file(tmp_path: Path, *cams: dict[str, str]) -> Path:
    path = tmp_path / "cameras.toml"
    path.write_text("".join(CAMERA.format(**{"extra": "", **c}) for c in cams))
    return path


def clean_env() -> dict[str, str]:
    """The embedded defaults: no ARGUS_* setting of the test run's own leaks into the operator's process."""
    return {k: v for k, v in os.environ.items() if not k.startswith("ARGUS_")}


@dataclass
class Up:
    proc: subprocess.Popen[str]
    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    out: list[str] = field(default_factory=list)

    def line_matching(self, pattern: str, timeout_s: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                assert self.proc.poll() is None, f"argus up exited {self.proc.returncode}: {self.out}"
                continue
            if (m := re.search(pattern, line)) is not None:
                return m
        raise AssertionError(f"no line matching {pattern!r} within {timeout_s}s; got {self.out}")

    def stop(self, timeout_s: float = 60.0) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=timeout_s)


def start_up(cams: Path, watchlist: Path, data: Path, port: int) -> Up:
    proc = subprocess.Popen([sys.executable, "-m", "argus.cli", "up", "--cameras", str(cams), "--watchlist",
                             str(watchlist), "--data-dir", str(data), "--port", str(port)], cwd=ROOT,
                            env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    up = Up(proc=proc)

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            up.out.append(line.rstrip())
            up.lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return up
