"""What an installed Argus can rely on: the runtime (``argus``, ``argus_services``) never imports the dev harness,
the benchmarks or the tests and never guesses where a checkout is; the wheel carries the models and the demo's
assets as ``argus_data`` and no top-level ``services`` or ``bench``; ``argus bench`` is the checkout's bench/.

The clean-venv install itself (demo, every stage, every Dockerfile's install steps) is
tests/integration/test_wheel_install.py.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from configparser import ConfigParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
#: Runtime module trees and what each must never import (the dev harness, the checkout's trees).
RUNTIME_FORBIDDEN = {
    "argus": {"argus_dev", "argus_services", "services", "bench", "tests"},
    "argus_services": {"argus_dev", "services", "bench", "tests"},
    "argus_data": {"argus", "argus_dev", "argus_services", "services", "bench", "tests"},
}
WHEEL_TOP_LEVEL = {"argus", "argus_services", "argus_dev", "argus_data"}


def _modules(tree: str) -> Iterator[tuple[Path, ast.Module]]:
    root = SRC / tree
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if tree == "argus_data" and rel.parts[0] in ("triton_models", "assets"):  # data, not modules of Argus
            continue
        yield path, ast.parse(path.read_text(), filename=str(path))


def imported_top_levels(module: ast.Module) -> set[str]:
    """Every top-level package a module imports: at the top, inside functions, under TYPE_CHECKING, or by name
    through importlib.import_module / __import__ with a literal."""
    names: set[str] = set()
    for node in ast.walk(module):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in ("import_module", "__import__"):
                names.add(node.args[0].value.split(".")[0])
    return names


@pytest.mark.parametrize("tree", sorted(RUNTIME_FORBIDDEN))
def test_the_runtime_never_imports_the_dev_harness_the_benchmarks_or_the_tests(tree: str) -> None:
    found = {f"{path.relative_to(ROOT)} imports {name}"
             for path, module in _modules(tree)
             for name in imported_top_levels(module) & RUNTIME_FORBIDDEN[tree]}
    assert not found, sorted(found)


def test_the_import_scan_sees_imports_inside_functions_and_type_checking_blocks() -> None:
    module = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from argus_dev.cluster import X\n"
                       "def f():\n    import bench.run\n    importlib.import_module('tests.servers')\n")
    assert imported_top_levels(module) >= {"argus_dev", "bench", "tests"}


def climb(node: ast.AST) -> int | None:
    """How many directories above its own a path built from ``__file__`` goes (``Path(__file__).parent`` = 0,
    ``.parents[2]`` = 2); None for an expression not built from ``__file__``."""
    if isinstance(node, ast.Attribute) and node.attr == "parent":
        inner = climb(node.value)
        return None if inner is None else inner + 1
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "parents":
        inner = climb(node.value.value)
        k = node.slice.value if isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, int) else 99
        return None if inner is None else inner + 1 + k
    if isinstance(node, ast.Call):
        if isinstance(node.func, ast.Attribute) and node.func.attr in ("resolve", "absolute"):
            return climb(node.func.value)
        if any(isinstance(a, ast.Name) and a.id == "__file__" for a in node.args):  # Path(__file__): the file
            return -1
    return None


def repo_guesses(path: Path, module: ast.Module, package_root: Path) -> list[str]:
    """Paths climbing out of the package from ``__file__``, and any REPO_ROOT: how code finds a checkout."""
    depth = len(path.parent.relative_to(package_root).parts)  # how far up this file may go and stay inside
    out = []
    for node in ast.walk(module):
        up = climb(node)
        if up is not None and up > depth:
            out.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)} leaves the package")
        named = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None
        if named == "REPO_ROOT" or (isinstance(node, ast.ImportFrom) and "REPO_ROOT" in {a.name for a in node.names}):
            out.append(f"{path.relative_to(ROOT)}:{node.lineno}: REPO_ROOT")
    return out


@pytest.mark.parametrize("tree", sorted(RUNTIME_FORBIDDEN))
def test_the_runtime_finds_its_files_in_its_package_never_in_a_checkout(tree: str) -> None:
    found = [g for path, module in _modules(tree) for g in repo_guesses(path, module, SRC / tree)]
    assert not found, found


@pytest.mark.parametrize(("code", "where", "guesses"), [
    ("ROOT = Path(__file__).resolve().parents[2]", "argus/config.py", 1),
    ("ROOT = Path(__file__).resolve().parent.parent", "argus/config.py", 1),
    ("STATIC = Path(__file__).resolve().parent.parent / 'console'", "argus/api/app.py", 0),  # argus/console: inside
    ("STATIC = Path(__file__).parent / 'static'", "argus/config.py", 0),
    ("from argus.config import REPO_ROOT", "argus/demo.py", 1),
])
def test_the_guess_scan_tells_a_climb_out_of_the_package_from_one_inside_it(code: str, where: str,
                                                                            guesses: int) -> None:
    path = SRC / where
    assert len(repo_guesses(path, ast.parse(code), SRC / "argus")) == guesses


def test_in_a_checkout_the_packaged_data_is_the_repositorys_own_directories() -> None:
    """The editable install serves triton_models/ and assets/ themselves (links), so a model added there, or a
    version `argus train emotion` writes, is what the runtime loads; and it is the setting's default."""
    import argus_data
    from argus.config import Settings

    assert argus_data.model_repository().samefile(ROOT / "triton_models")
    assert argus_data.assets().samefile(ROOT / "assets")
    assert Settings().model_repository == argus_data.model_repository()


# ---- the built wheel ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    """The wheel as plain ``uv build`` makes it: the sdist first, then the wheel from the sdist (the links in src/
    must survive that trip; tests/integration/test_wheel_install.py uses the direct ``--wheel`` build)."""
    out = tmp_path_factory.mktemp("dist")
    uv = Path(sys.executable).parent / "uv"
    proc = subprocess.run([str(uv), "build", "--quiet", "--out-dir", str(out), str(ROOT)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [built] = out.glob("argus_watch-*.whl")
    return zipfile.ZipFile(built)


def test_the_wheel_installs_no_top_level_services_or_bench_package(wheel: zipfile.ZipFile) -> None:
    tops = {n.split("/")[0] for n in wheel.namelist() if not n.split("/")[0].endswith(".dist-info")}
    assert tops == WHEEL_TOP_LEVEL
    stages = {n.split("/")[1] for n in wheel.namelist() if re.fullmatch(r"argus_services/\w+/stage\.py", n)}
    assert stages == {"ingest", "inference", "matcher", "alerter", "api"}
    assert not {"services", "bench", "tests", "triton_models", "assets"} & tops


def test_the_wheel_carries_every_committed_model_and_asset_file_byte_for_byte(wheel: zipfile.ZipFile) -> None:
    tracked = subprocess.run(["git", "ls-files", "triton_models", "assets"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
    assert len(tracked) > 30
    names = set(wheel.namelist())
    missing = [t for t in tracked if f"argus_data/{t}" not in names]
    assert not missing
    differ = [t for t in tracked if wheel.read(f"argus_data/{t}") != (ROOT / t).read_bytes()]
    assert not differ
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_the_wheel_declares_the_stages_and_the_dev_harness_commands_as_entry_points(wheel: zipfile.ZipFile) -> None:
    [name] = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    eps = ConfigParser()
    eps.read_string(wheel.read(name).decode())
    assert dict(eps["argus.stages"]).keys() == {"ingest", "inference", "matcher", "alerter"}
    assert dict(eps["argus.commands"]) == {"bench": "argus_dev.commands:add_bench",
                                          "dev": "argus_dev.commands:add_dev"}
    assert dict(eps["argus.demo_modes"]) == {"distributed": "argus_dev.commands:distributed_demo"}
    assert all(v.split(":")[0].split(".")[0] in WHEEL_TOP_LEVEL for s in eps.sections() for v in eps[s].values())


# ---- argus bench: the checkout's bench/ --------------------------------------------------------------------------
def _argus(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(sys.executable).parent / "argus"), *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def test_argus_bench_hands_its_arguments_to_the_checkouts_bench_untouched(tmp_path: Path) -> None:
    proc = _argus("bench", "--only", "no-such-area", cwd=tmp_path)  # bench/run.py's own parser answers
    assert proc.returncode == 2
    assert "argument --only: invalid choice: 'no-such-area'" in proc.stderr


def test_argus_bench_says_a_non_checkout_in_argus_repo_is_not_one(tmp_path: Path) -> None:
    from argus.errors import ConfigError
    from argus_dev.commands import bench_command

    with pytest.raises(ConfigError, match="ARGUS_REPO: expected a source checkout of Argus"):
        bench_command(["--quick"], cwd=tmp_path, env={"ARGUS_REPO": str(tmp_path)})
    argv, root = bench_command(["soak", "--minutes", "1"], cwd=tmp_path, env={"ARGUS_REPO": str(ROOT)})
    assert argv[1:] == ["-m", "bench", "soak", "--minutes", "1"] and root == ROOT
