"""Triton Inference Server 2.51 on CPU, from the PyPI ``nvidia-pytriton`` wheel.

The wheel carries a real ``tritonserver`` binary with only the Python backend. Production serves the ONNX files
with Triton's onnxruntime backend (``config.pbtxt``); here every model dir also has ``configs/cpu.pbtxt`` that
runs the same ONNX file through ``1/model.py`` (tools/triton_python_model.py) on ONNX Runtime, selected with
``--model-config-name=cpu``. The gRPC/HTTP protocol, dynamic batching and metrics are Triton's own.

pytriton pins ``numpy<2``, so it gets its own venv under the cache dir, never the app's.

With ``security`` the gRPC endpoint (the one Argus uses) is TLS-only (``--grpc-use-ssl``). Triton's HTTP endpoint has
no TLS of its own; it stays on 127.0.0.1 here for the readiness probe, and production does not expose it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import argus_data
from argus_dev.devservers import (
    HOST,
    DevServerError,
    Launch,
    ServerSpec,
    http_ok,
    install_once,
    make_venv,
    run_checked,
)
from argus_dev.devservers.security import Security

log = logging.getLogger(__name__)

PYTRITON_VERSION = "0.7.0"
#: The stub is built per Python minor version; the venv's interpreter must be one the wheel has a stub for.
PYTHON_VERSION = "3.11"
REQUIREMENTS = (f"nvidia-pytriton=={PYTRITON_VERSION}", "onnxruntime>=1.18,<2", "numpy<2")


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _site_packages(venv: Path) -> Path:
    found = sorted((venv / "lib").glob("python3*/site-packages"))
    if not found:
        raise DevServerError(f"triton: expected a site-packages dir under {venv / 'lib'}, found none")
    return found[0]


def _base_libdir(venv: Path) -> str:
    """LIBDIR of the interpreter the venv was made from: the stub must load *that* libpython, not the system one
    (with the system's, model initialisation fails with an RLock error)."""
    out = run_checked([str(_venv_python(venv)), "-c", "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))"],
               what="triton: locating libpython")
    return out.strip()


#: ``E... model_lifecycle.cc:642] "failed to load 'NAME' version 1: REASON\n\nAt: ...``
_LOAD_FAILURE = re.compile(r"failed to load '([^']+)' version \d+: ([^\"]+)")


def _repository_index(base_url: str) -> list[dict[str, Any]]:
    req = urllib.request.Request(f"{base_url}/v2/repository/index", data=b"{}", method="POST")
    try:
        with urllib.request.urlopen(req, timeout=2) as resp:
            data = json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError):
        return []
    return [m for m in data if isinstance(m, dict)] if isinstance(data, list) else []


def unservable_models(model_repo: Path) -> list[str]:
    """Why models in ``model_repo`` cannot load on this python-backend-only Triton, one line per model.

    Checked before starting so the message says what to do, rather than Triton's "unable to find backend
    library for backend 'onnxruntime'".
    """
    problems = []
    for d in sorted(p for p in model_repo.iterdir()
                    if p.is_dir() and ((p / "config.pbtxt").is_file() or (p / "configs" / "cpu.pbtxt").is_file())):
        if not (d / "configs" / "cpu.pbtxt").is_file():
            problems.append(f"{d.name}: no configs/cpu.pbtxt (its config.pbtxt needs the onnxruntime backend, "
                            f"which this CPU Triton lacks)")
        elif not (d / "1" / "model.py").is_file():
            problems.append(f"{d.name}: configs/cpu.pbtxt but no 1/model.py (run `python tools/sync_triton_models.py`)")
    return problems


class TritonServer(ServerSpec):
    name = "triton"
    port_keys = ("triton_http", "triton_grpc", "triton_metrics")
    cmdline_marker = "tritonserver"
    ready_timeout_s = 120.0
    stop_timeout_s = 20.0

    def root(self, home: Path) -> Path:
        return home / "triton" / PYTRITON_VERSION

    def venv(self, home: Path) -> Path:
        return self.root(home) / "venv"

    def install(self, home: Path) -> None:
        def install() -> None:
            make_venv(self.venv(home), python=PYTHON_VERSION, requirements=REQUIREMENTS, what="triton")
            self._layout_backend(home)

        install_once(self.root(home), PYTRITON_VERSION, install, what="triton (pytriton)")

    def _layout_backend(self, home: Path) -> None:
        """Triton looks for ``<backend-dir>/python/libtriton_python.so`` and the stub next to it."""
        sp = _site_packages(self.venv(home))
        ts = sp / "pytriton" / "tritonserver"
        backend = self.root(home) / "backends" / "python"
        if backend.exists():
            shutil.rmtree(backend)
        backend.mkdir(parents=True)
        stub = ts / "python_backend_stubs" / PYTHON_VERSION / "triton_python_backend_stub"
        sources = [ts / "backends" / "python" / "libtriton_python.so",
                   ts / "backends" / "python" / "triton_python_backend_utils.py", stub]
        for src in sources:
            if not src.is_file():
                raise DevServerError(f"triton: expected {src} in the nvidia-pytriton wheel, it is missing")
            shutil.copy2(src, backend / src.name)
        (backend / "triton_python_backend_stub").chmod(0o755)

    def binary(self, home: Path) -> Path:
        return _site_packages(self.venv(home)) / "pytriton" / "tritonserver" / "bin" / "tritonserver"

    def prepare(self, home: Path, data_dir: Path, ports: Mapping[str, int], options: Mapping[str, Any]) -> Launch:
        venv = self.venv(home)
        sp = _site_packages(venv)
        model_repo = Path(options.get("model_repository") or argus_data.model_repository()).resolve()
        if not model_repo.is_dir():
            raise DevServerError(f"triton: model repository {model_repo} does not exist")
        config_name = str(options.get("triton_config_name", "cpu"))
        problems = unservable_models(model_repo) if config_name == "cpu" else []
        if problems:
            raise DevServerError(f"triton: models in {model_repo} cannot be served on CPU: " + "; ".join(problems))
        env = dict(os.environ)
        libdirs = [str(sp / "nvidia_pytriton.libs"), _base_libdir(venv)]
        if env.get("LD_LIBRARY_PATH"):
            libdirs.append(env["LD_LIBRARY_PATH"])
        env["LD_LIBRARY_PATH"] = ":".join(libdirs)
        env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(venv)
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # no __pycache__ inside the model repository
        env.pop("PYTHONPATH", None)
        env.pop("PYTHONHOME", None)
        cmd = [
            str(self.binary(home)),
            f"--model-repository={model_repo}",
            f"--backend-directory={self.root(home) / 'backends'}",
            f"--cache-directory={sp / 'pytriton' / 'tritonserver' / 'caches'}",
            f"--model-config-name={config_name}",
            f"--http-address={HOST}", f"--http-port={ports['triton_http']}",
            f"--grpc-address={HOST}", f"--grpc-port={ports['triton_grpc']}",
            f"--metrics-address={HOST}", f"--metrics-port={ports['triton_metrics']}",
            "--allow-metrics=true", "--allow-gpu-metrics=false", "--allow-cpu-metrics=true",
            "--log-verbose=0", "--log-info=true",
            # Models are loaded at start-up (all of them) but can be (re)loaded over the API by tests.
            "--model-control-mode=explicit", "--load-model=*",
            # A model that fails to load must fail the start, not leave a half-ready server.
            "--exit-on-error=true", "--strict-readiness=true",
        ]
        extra = {"model_repository": str(model_repo), "http": f"http://{HOST}:{ports['triton_http']}",
                 "metrics": f"http://{HOST}:{ports['triton_metrics']}/metrics"}
        security: Security | None = options.get("security")
        if security is not None:
            tls = security.tls
            cmd += ["--grpc-use-ssl=true", f"--grpc-server-cert={tls.server_cert}",
                    f"--grpc-server-key={tls.server_key}", f"--grpc-root-cert={tls.ca_cert}"]
            extra.update(grpc_tls="true", ca_cert=str(tls.ca_cert))
        data_dir.mkdir(parents=True, exist_ok=True)
        return Launch(cmd=cmd, env=env, cwd=data_dir, extra=extra)

    def ready(self, ports: Mapping[str, int]) -> bool:
        base = f"http://{HOST}:{ports['triton_http']}"
        if http_ok(f"{base}/v2/health/ready"):
            return True
        if http_ok(f"{base}/v2/health/live"):
            # Live but not ready: a model failed to load. Triton keeps running in that state, so say which
            # model and why now instead of timing out.
            broken = [m for m in _repository_index(base) if m.get("state") == "UNAVAILABLE"]
            if broken:
                why = "; ".join(f"{m.get('name')}: {m.get('reason', '?')}" for m in broken)
                raise DevServerError(f"triton: expected every model to load, these did not: {why}")
        return False

    def address(self, ports: Mapping[str, int]) -> str:
        return f"{HOST}:{ports['triton_grpc']}"

    def explain_exit(self, log_text: str) -> str:
        reasons: dict[str, str] = {}
        for match in _LOAD_FAILURE.finditer(log_text):
            reasons.setdefault(match.group(1), match.group(2).split(chr(92) + "n")[0])
        lines = [f"{model}: {why}" for model, why in reasons.items()]
        return "expected every model to load, these did not: " + "; ".join(lines) if lines else ""

