"""Argus as a new user installs it: the wheel built from this checkout, installed into a fresh venv outside it, run
from a directory that is not a checkout. `argus demo` must raise the alerts the repository's demo raises, every
`argus run <stage>` must come up on embedded defaults (ready on its ops port) and stop on SIGTERM, and each stage
Dockerfile's install steps, replayed into a venv of their own, must give an image whose entry command resolves.

One wheel and one venv serve the module (building and installing take ~20 s; the packages come from uv's cache).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from argus_dev.devservers import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
UV = Path(sys.executable).parent / "uv"  # scripts/setup.sh installs it into the project venv
DOCKER = ROOT / "deploy" / "docker"
STAGES = ("ingest", "inference", "matcher", "alerter", "api")
#: The module each extra must make importable in an image (what the stage needs it for).
EXTRA_MODULES = {"kafka": "kafka", "mongo": "pymongo", "triton": "tritonclient.grpc"}


@dataclass(frozen=True, kw_only=True)
class Venv:
    root: Path

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def python(self) -> Path:
        return self.bin / "python"


def _uv(*args: str, timeout: float = 300) -> None:
    proc = subprocess.run([str(UV), *args], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"uv {' '.join(args)}: {proc.stderr[-3000:]}"


def make_venv(path: Path, *requirements: str) -> Venv:
    _uv("venv", "--quiet", "--python", sys.executable, str(path))
    venv = Venv(root=path)
    if requirements:
        _uv("pip", "install", "--quiet", "--python", str(venv.python), *requirements)
    return venv


def user_env(venv: Venv, **extra: str) -> dict[str, str]:
    """A shell of someone who installed Argus: the venv first on PATH, nothing of this checkout or of its
    developer's ARGUS_* settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ARGUS_") and k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PATH"] = f"{venv.bin}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv.root)
    return {**env, **extra}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert UV.is_file(), f"expected uv in the project venv ({UV}), got none: run scripts/setup.sh --dev"
    out = tmp_path_factory.mktemp("dist")
    _uv("build", "--quiet", "--wheel", "--out-dir", str(out), str(ROOT))
    [built] = out.glob("argus_watch-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """The wheel alone, no extras: embedded mode, what `pip install argus-watch` gives."""
    return make_venv(tmp_path_factory.mktemp("user") / "venv", str(wheel))


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A working directory that is no checkout and has none above it."""
    assert not tmp_path.resolve().is_relative_to(ROOT)
    assert not any((p / "pyproject.toml").exists() for p in (tmp_path, *tmp_path.parents))
    return tmp_path


def run(venv: Venv, *argv: str, cwd: Path, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(venv.bin / argv[0]), *argv[1:]], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout, env=user_env(venv, **env))


def test_the_installed_argus_runs_from_the_venv_with_its_packaged_models_and_nothing_of_the_checkout(
        venv: Venv, outside: Path) -> None:
    code = ("import json, importlib.util as u, argus, argus_data\nfrom argus.config import Settings\n"
            "print(json.dumps({'argus': argus.__file__, 'models': str(Settings().model_repository),"
            " 'assets': str(argus_data.assets()),"
            " 'absent': [m for m in ('services', 'bench', 'tests') if u.find_spec(m) is None]}))")
    proc = run(venv, "python", "-c", code, cwd=outside)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    site = venv.root / "lib"
    for key in ("argus", "models", "assets"):
        assert Path(out[key]).is_relative_to(site), (key, out[key])
    assert (Path(out["models"]) / "face_embedder" / "config.pbtxt").is_file()
    assert (Path(out["assets"]) / "demo" / "cameras.toml").is_file()
    assert out["absent"] == ["services", "bench", "tests"]


def test_argus_demo_from_the_wheel_raises_the_alerts_the_repositorys_demo_raises(venv: Venv, outside: Path) -> None:
    proc = run(venv, "argus", "demo", "--data-dir", str(outside / "demo"), cwd=outside, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["bus"] == "memory" and out["backend"] == "onnxruntime" and out["store"] == "sqlite"
    assert out["frames"] == 163 and out["dead_letters"] == 0  # as tests/e2e/test_demo.py: every sampled frame
    cams = {c["id"]: c["location"] for c in tomllib.loads((ROOT / "assets/demo/cameras.toml").read_text())["camera"]}
    assert sorted(a["camera_id"] for a in out["alerts"]) == ["market-square", "north-gate"]
    for a in out["alerts"]:
        assert a["person_id"] == "pyfeat-man" and a["runner_up"] in {"obama", "biden"}
        assert a["location"] == {k: cams[a["camera_id"]][k] for k in ("lat", "lon", "address", "zone")}
        assert a["score"] >= a["threshold"] and a["revision"] == 1 and a["faces_supporting"] >= 2
    assert out["matches"] == len(out["alerts"]) == out["events"]
    assert "ALERT pyfeat-man seen at North gate" in proc.stdout


def test_every_stage_comes_up_from_the_wheel_on_embedded_defaults_and_stops_on_sigterm(
        venv: Venv, outside: Path) -> None:
    """All five at once (each its own data dir and ops port); ingest and alerter read the packaged demo cameras."""
    cameras = run(venv, "python", "-c", "import argus_data; print(argus_data.assets() / 'demo' / 'cameras.toml')",
                  cwd=outside).stdout.strip()
    procs: dict[str, tuple[subprocess.Popen[bytes], int, Path]] = {}
    try:
        for stage in STAGES:
            port, log = free_port(), outside / f"{stage}.log"
            env = user_env(venv, ARGUS_DATA_DIR=str(outside / stage), ARGUS_CAMERAS_FILE=cameras,
                           ARGUS_API_PORT=str(free_port()))
            with log.open("wb") as f:
                procs[stage] = (subprocess.Popen([str(venv.bin / "argus"), "run", stage, "--metrics-port", str(port)],
                                                 cwd=outside, env=env, stdout=f, stderr=subprocess.STDOUT), port, log)
        ready: dict[str, object] = {}
        deadline = time.monotonic() + 300  # ~10 s on an idle machine; generous for a shared, loaded one
        while len(ready) < len(procs) and time.monotonic() < deadline:
            for stage, (proc, port, log) in procs.items():
                if stage in ready:
                    continue
                assert proc.poll() is None, f"{stage} exited {proc.returncode}: {log.read_text()[-2000:]}"
                try:
                    r = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                except httpx.HTTPError:
                    continue
                if r.status_code == 200:
                    ready[stage] = r.json()
            time.sleep(0.5)
        assert set(ready) == set(STAGES), {s: procs[s][2].read_text()[-1500:] for s in set(STAGES) - set(ready)}
        assert ready["ingest"]["cameras"] == ["market-square", "north-gate", "station-hall"]  # type: ignore[index]
    finally:
        for proc, _, _ in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes = {}
        for stage, (proc, _, _) in procs.items():
            try:
                codes[stage] = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[stage] = "did not stop on SIGTERM within 60 s"
    assert codes == dict.fromkeys(STAGES, 0), {s: procs[s][2].read_text()[-1500:] for s, c in codes.items() if c}


def test_argus_bench_outside_a_checkout_says_the_benchmarks_need_one(venv: Venv, outside: Path) -> None:
    proc = run(venv, "argus", "bench", "--quick", cwd=outside)
    assert proc.returncode == 2
    assert "the benchmarks are bench/ of a source checkout" in proc.stderr, proc.stderr


# ---- the Dockerfiles' install steps ---------------------------------------------------------------------------
def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    out, buf = [], ""
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("#") or (not buf and not s):
            continue
        buf += (" " if buf else "") + s.removesuffix("\\").strip()
        if not s.endswith("\\"):
            word, _, rest = buf.partition(" ")
            out.append((word.upper(), rest.strip()))
            buf = ""
    return out


#: RUN steps that set up the OS image (users, directories), not Python: nothing a venv can replay.
SYSTEM_STEPS = ("set -eux", "groupadd ", "useradd ", "install -d ", "rm -rf /wheels")


def replay(dockerfile: Path, *, wheel: Path, image: Path) -> tuple[Venv, dict[str, str], list[str], set[str]]:
    """The final stage's COPY and pip steps into ``image`` (a directory standing for the image's root): COPY maps
    build-context paths (only the built wheel may be one) onto it, each ``pip install`` runs as ``uv pip install``
    into a fresh venv with the image's paths mapped under ``image``. Returns the venv, ENV, ENTRYPOINT, extras."""
    steps = instructions(dockerfile.read_text())
    final = steps[max(i for i, (k, _) in enumerate(steps) if k == "FROM"):]
    venv = make_venv(image / "venv")
    env: dict[str, str] = {}
    entry: list[str] = []
    extras: set[str] = set()
    ignore = (dockerfile.parent / f"{dockerfile.name}.dockerignore").read_text().splitlines()
    allowed = [p[1:] for p in ignore if p.startswith("!")]

    def mapped(text: str) -> str:  # the image's absolute paths under `image`
        return re.sub(r"(?<![\w.])/(wheels|var|etc)\b", lambda m: f"{image}/{m.group(1)}", text)

    for kind, args in final:
        if kind == "ENV":
            env.update(t.split("=", 1) for t in shlex.split(args))
        elif kind == "COPY":
            *sources, dest = shlex.split(args)
            assert not [s for s in sources if s.startswith("--")], f"{dockerfile.name}: COPY {args}: expected the " \
                "wheel from the build context, got a copy from another stage (a wheel built from the source tree)"
            for src in sources:
                assert src.startswith("dist/") and src.endswith(".whl"), \
                    f"{dockerfile.name}: COPY {src}: expected only the built wheel (dist/*.whl), got a source path"
                assert any(fnmatch.fnmatch(src, a) for a in allowed), \
                    f"{dockerfile.name}: COPY {src}: excluded by its .dockerignore (allows {allowed})"
                assert fnmatch.fnmatch(f"dist/{wheel.name}", src)
                target = Path(mapped(dest))
                target.mkdir(parents=True, exist_ok=True)
                (target / wheel.name).write_bytes(wheel.read_bytes())
        elif kind == "RUN":
            for step in (s.strip() for s in args.split(";") if s.strip()):
                if step.startswith(SYSTEM_STEPS):
                    continue
                assert step.startswith("pip install "), \
                    f"{dockerfile.name}: RUN {step!r}: expected pip install or an OS step {SYSTEM_STEPS}, got neither"
                extras |= {e for group in re.findall(r"\[([\w,\-]+)\]", step) for e in group.split(",")}
                pip_args = mapped(step.removeprefix("pip install ").replace("--no-cache-dir", ""))
                cmd = f"{shlex.quote(str(UV))} pip install --quiet --python {shlex.quote(str(venv.python))} {pip_args}"
                proc = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=300)
                assert proc.returncode == 0, f"{dockerfile.name}: {step}: {proc.stderr[-3000:]}"
        elif kind == "ENTRYPOINT":
            entry = json.loads(args)
    return venv, env, entry, extras


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_dockerfile_installs_the_wheel_and_its_entry_command_resolves(
        stage: str, wheel: Path, tmp_path: Path) -> None:
    image = tmp_path / "image"
    venv, env, entry, extras = replay(DOCKER / f"{stage}.Dockerfile", wheel=wheel, image=image)
    assert entry == ["argus", "run", stage]
    assert (venv.bin / entry[0]).is_file(), f"expected the {entry[0]!r} command in the image, got none"
    image_env = {k: v.replace("/var/lib/argus", str(image / "var/lib/argus")) for k, v in env.items()}
    proc = run(venv, *entry, "--help", cwd=tmp_path, **image_env)
    assert proc.returncode == 0 and proc.stdout.startswith("usage: argus run"), proc.stderr[-2000:]
    group = "argus.services" if stage == "api" else "argus.stages"
    modules = sorted(EXTRA_MODULES[e] for e in extras)
    code = (f"import importlib, importlib.metadata as m\n[ep] = m.entry_points(group={group!r}, name={stage!r})\n"
            f"ep.load()\nfor mod in {modules!r}: importlib.import_module(mod)\nprint('ok')")
    proc = run(venv, "python", "-c", code, cwd=tmp_path, **image_env)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


def test_the_model_image_copies_the_repositorys_model_directories_and_its_context_allows_them() -> None:
    """triton-models.Dockerfile is no Python install (busybox + a --target ONNX Runtime for Triton's Python 3.10):
    what it must get right is copying triton_models/ with every model, which its .dockerignore must let through."""
    dockerfile = DOCKER / "triton-models.Dockerfile"
    copies = [shlex.split(a) for k, a in instructions(dockerfile.read_text()) if k == "COPY"]
    sources = [c[0] for c in copies if not c[0].startswith("--")]
    assert sources == ["triton_models"]
    ignore = (DOCKER / "triton-models.Dockerfile.dockerignore").read_text().splitlines()
    assert "!triton_models/" in ignore
    models = [p for p in (ROOT / "triton_models").iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert models and all((m / "config.pbtxt").is_file() for m in models)
