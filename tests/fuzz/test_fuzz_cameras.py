"""Fuzz the camera registry parser: ``CameraRegistry.load`` returns a registry or raises a ConfigError whose message
names the file and the problem, never another exception; credentials in stream URLs never reach the error text (nor
a camera's repr, which is what logs show)."""

from __future__ import annotations

import json
import math
import re
import string
from pathlib import Path
from typing import Any

import pytest
from fuzzing import FUZZ
from hypothesis import given
from hypothesis import strategies as st

from argus.cameras import CameraRegistry, redact_url
from argus.errors import ConfigError
from argus.ids import SLUG_PATTERN, is_slug
from argus.schemas import FrameV2


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(v, list):
        return "[" + ", ".join(map(toml_value, v)) + "]"
    return "{" + ", ".join(f"{toml_value(k)} = {toml_value(x)}" for k, x in v.items()) + "}"


def toml_doc(doc: dict[str, Any]) -> str:
    return "".join(f"{toml_value(k)} = {toml_value(v)}\n" for k, v in doc.items())


@pytest.fixture(scope="module")
def registry_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-cameras") / "cameras.toml"


def load(path: Path, content: str | bytes) -> CameraRegistry | ConfigError:
    """The property's first half: a registry or a ConfigError naming the file (anything else propagates)."""
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    try:
        return CameraRegistry.load(path)
    except ConfigError as e:
        assert str(path) in str(e), str(e)
        return e


# -- arbitrary TOML --------------------------------------------------------------------------------------------------
toml_scalars = (st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=30)
                | st.sampled_from(["rtsp://10.0.0.1/s", "device:0", "gate-1", "~/x.mp4", "file://", ""]))
toml_values = st.recursive(toml_scalars, lambda c: st.lists(c, max_size=4)
                           | st.dictionaries(st.text(max_size=10), c, max_size=4), max_leaves=12)
camera_keys = st.sampled_from(["id", "name", "url", "fps", "enabled", "location"]) | st.text(max_size=8)
random_docs = st.dictionaries(st.sampled_from(["camera"]) | st.text(max_size=8), toml_values, max_size=3)
random_docs |= st.fixed_dictionaries(
    {"camera": st.lists(st.dictionaries(camera_keys, toml_values, max_size=7), max_size=3)})


@FUZZ
@given(content=st.text(max_size=400) | st.binary(max_size=200) | random_docs.map(toml_doc))
def test_arbitrary_toml_loads_or_raises_config_error(registry_file: Path, content: str | bytes) -> None:
    load(registry_file, content)


# -- structurally valid registries with mutated values ---------------------------------------------------------------
WIRE_SLUG = re.compile(SLUG_PATTERN.removesuffix("$") + r"\Z")  # the wire schema's (Rust regex) reading of '$'
slug = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,63}", fullmatch=True)
bad_slug = (st.sampled_from(["", "Gate-1", "-gate", "gate 1", "g" * 65, "gäte", "_x", "a/b"])
            | st.text(max_size=70)).filter(lambda s: not is_slug(s))
user = st.text(string.ascii_letters + string.digits, min_size=3, max_size=8).map(lambda s: "Us" + s)
password = st.text(string.ascii_letters + string.digits + "!#$%&'()*+,;=:/?~-._@", min_size=4, max_size=12).map(
    lambda s: "Pw" + s)
host = st.sampled_from(["10.0.0.7", "cam.local", "cam.local:554", "[fe80::1]"])
path = st.sampled_from(["", "/", "/stream1", "/live/ch01"])


@st.composite
def credential_url(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A stream URL carrying credentials (userinfo and/or a secret query value), and the secrets in it."""
    u, pw = draw(user), draw(password)
    scheme = draw(st.sampled_from(["rtsp", "rtsps", "http", "https", "RTSP", "ftp", "gopher"]))
    userinfo = draw(st.sampled_from([f"{u}:{pw}@", f"{u}@", f":{pw}@", f"{pw}@"]))
    query = draw(st.sampled_from(["", f"?token={pw}", f"?channel=1&password={pw}"]))
    netloc = draw(st.sampled_from(["", "", "", "[::1", ""])) + draw(host)  # '[::1' makes urlsplit raise
    secrets = [s for s in (u, pw) if s in userinfo + query]
    return f"{scheme}://{userinfo}{netloc}{draw(path)}{query}", secrets


plain_url = st.sampled_from(["rtsp://10.0.0.7/stream1", "http://cam.local:8080/video", "device:0", "clips/gate.mp4",
                             "/data/clip.mp4", "file://clips/a.mp4", "~/clips/a.mp4"])
location = st.fixed_dictionaries({"lat": st.floats(-90, 90), "lon": st.floats(-180, 180),
                                  "address": st.text(min_size=1, max_size=20), "zone": st.text(min_size=1, max_size=8)})
camera = st.fixed_dictionaries(
    {"id": slug, "name": st.text(min_size=1, max_size=20), "url": plain_url, "location": location},
    optional={"fps": st.floats(min_value=0, max_value=60, exclude_min=True) | st.integers(1, 60),
              "enabled": st.booleans()},
)
#: Values out of each field's range or of the wrong type: certainly refused.
BAD = {
    "id": bad_slug | st.integers() | st.lists(slug, max_size=2),
    "name": st.just("") | st.integers() | st.booleans(),
    "fps": st.sampled_from([0, -1, 0.0, -0.0, 60.0001, 61, 1e9, math.nan, math.inf, -math.inf, 10**400, "5", True])
    | st.floats(max_value=0) | st.floats(min_value=60, exclude_min=True),
    "enabled": st.sampled_from(["yes", "true", 1, 0, 1.0, [True]]),
    "url": st.sampled_from(["", "   ", "device:", "device:-1", "device:x", "rtsp://", "http:///x", "ftp://h/x",
                            "~nosuchuser-argus-fuzz/clip.mp4", "~nosuchuser-argus-fuzz"])
    | st.integers() | st.booleans(),
    "location": st.sampled_from(["north gate", 5, [1.0, 2.0], {}]),
    "location.lat": st.floats(min_value=90, exclude_min=True) | st.floats(max_value=-90, exclude_max=True)
    | st.sampled_from([math.nan, "52.5", 10**400, True]),
    "location.lon": st.floats(min_value=180, exclude_min=True) | st.floats(max_value=-180, exclude_max=True)
    | st.sampled_from([math.nan, "13.4", -(10**400)]),
    "location.address": st.sampled_from(["", 7, ["a"]]),
    "location.zone": st.sampled_from(["", False]),
}


FIELDS = {"id", "name", "url", "fps", "enabled", "location", "lat", "lon", "address", "zone"}


@st.composite
def mutated_registry(draw: st.DrawFn) -> tuple[dict[str, Any], list[str], list[str]]:
    """A registry document, the words its error must contain (one per certain problem), and its secrets."""
    cams = draw(st.lists(camera, min_size=1, max_size=3, unique_by=lambda c: c["id"]))
    doc: dict[str, Any] = {"camera": cams}
    expect: dict[tuple[int, str], str] = {}  # (camera index, field) -> word; a later mutation of a field replaces it
    secrets: list[str] = []

    def problem(i: int, field: str, word: str | None) -> None:
        for k in [k for k in expect if k[0] == i and (k[1] == field or k[1].startswith(field + "."))]:
            del expect[k]
        if field == "id":  # the duplicate is judged on ids
            expect.pop((-1, "duplicate"), None)
        if word:
            expect[(i, field)] = word

    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(cams) - 1))
        cam = cams[i]
        loc = cam.get("location")
        op = draw(st.sampled_from(["bad", "bad", "credentials", "wrap_url", "unknown", "missing", "duplicate",
                                   "top_level"]))
        if op == "credentials":
            cam["url"], found = draw(credential_url())
            secrets += found
            problem(i, "url", None)  # a credential URL may be valid or not: only its secrecy is certain
        elif op == "wrap_url":  # a wrong-typed url that still holds the credentials
            url, found = draw(credential_url())
            cam["url"], secrets = [url], secrets + found
            problem(i, "url", "url")
        elif op == "bad":
            field = draw(st.sampled_from(sorted(BAD)))
            if "." not in field:
                cam[field] = draw(BAD[field])
                problem(i, field, field)
            elif isinstance(loc, dict):
                loc[field.split(".")[1]] = draw(BAD[field])
                problem(i, field, field)
        elif op == "unknown":
            key = draw(st.text(min_size=1, max_size=10).filter(lambda k: k not in FIELDS))
            where = loc if isinstance(loc, dict) and draw(st.booleans()) else cam
            where[key] = draw(toml_values)
            expect[(i, f"unknown {key}")] = "unknown field"
        elif op == "missing":
            key = draw(st.sampled_from(["id", "name", "url", "location"]))
            cam.pop(key, None)
            problem(i, key, "missing required field")
        elif op == "duplicate" and len(cams) > 1 and "id" in cams[0] and (0, "id") not in expect:
            cams[-1]["id"] = cams[0]["id"]
            problem(len(cams) - 1, "id", None)
            expect[(-1, "duplicate")] = "duplicate"
        elif op == "top_level":
            key = draw(st.text(min_size=1, max_size=10).filter(lambda k: k != "camera"))
            doc[key] = draw(toml_values)
            expect[(-2, key)] = "unknown top-level key"
    if (-1, "duplicate") in expect and any(k[0] in (0, len(cams) - 1) for k in expect if k[0] >= 0):
        del expect[(-1, "duplicate")]  # a camera that fails validation is not compared for duplicates
    return doc, sorted(set(expect.values())), secrets


def _leaks(text: str, secrets: list[str]) -> list[str]:
    return [s for s in secrets if s in text or repr(s)[1:-1] in text or json.dumps(s)[1:-1] in text]


@FUZZ
@given(case=mutated_registry())
def test_mutated_registry_names_the_problem_and_never_the_credentials(
        registry_file: Path, case: tuple[dict[str, Any], list[str], list[str]]) -> None:
    doc, expect, secrets = case
    result = load(registry_file, toml_doc(doc))
    if isinstance(result, ConfigError):
        msg = str(result)
        assert not _leaks(msg, secrets), msg
        missing = [w for w in expect if w not in msg]
        assert not missing, f"{missing} not named in:\n{msg}"
        assert all(line.startswith(f"{registry_file}: ") for line in msg.splitlines()), msg
    else:
        assert not expect, f"accepted a registry with {expect}: {result!r}"
        for cam in result:
            assert not _leaks(repr(cam) + cam.safe_url, secrets), repr(cam)
            assert WIRE_SLUG.match(cam.id), cam.id  # the id every wire message carries: FrameV2 must accept it
            assert 0 < cam.fps <= 60


# -- regressions: the minimal inputs the properties found ------------------------------------------------------------
CAM = '[[camera]]\nid = {id}\nname = "n"\nurl = {url}\nlocation = {{lat = 1.0, lon = 2.0, address = "a", zone = "z"}}\n'


def test_tilde_path_of_an_unknown_user_is_a_config_error_not_runtime_error(registry_file: Path) -> None:
    # Path("~nosuchuser/x").expanduser() raises RuntimeError, which pydantic does not turn into a ValidationError
    err = load(registry_file, CAM.format(id='"g"', url='"~nosuchuser-argus-fuzz/clip.mp4"'))
    assert isinstance(err, ConfigError) and "url" in str(err) and "~nosuchuser-argus-fuzz" in str(err)


@pytest.mark.parametrize("url", ["ftp://Usx:Pw#secret@cam/x", "gopher://Usx:Pw/secret@cam/x",
                                 "ftp://Usx:Pw?secret@cam/x?token=Pw?secret"])
def test_credentials_with_a_delimiter_are_redacted(registry_file: Path, url: str) -> None:
    # an unescaped '#', '/' or '?' in the password ends urlsplit's netloc before the '@': it was shown verbatim
    err = load(registry_file, CAM.format(id='"g"', url=json.dumps(url)))
    assert isinstance(err, ConfigError) and "Pw" not in str(err) and "***@cam" in str(err), str(err)
    assert "secret" not in redact_url(url.replace("ftp", "rtsp").replace("gopher", "rtsp"))


def test_wrong_typed_url_never_echoes_the_credentials(registry_file: Path) -> None:
    err = load(registry_file, CAM.format(id='"g"', url='["rtsp://Usx:Pwsecret@cam/x"]'))
    assert isinstance(err, ConfigError) and "url" in str(err) and "Pwsecret" not in str(err), str(err)


def test_camera_id_with_a_trailing_newline_is_refused(registry_file: Path) -> None:
    result = load(registry_file, CAM.format(id='"gate-1\\n"', url='"rtsp://h/x"'))
    assert isinstance(result, ConfigError), [c.id for c in result]  # FrameV2 refuses it: every frame would fail
    FrameV2  # noqa: B018 - the schema that refuses it
