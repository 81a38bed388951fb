"""Camera registry: TOML in, validated frozen cameras out, and errors that point at file, entry and field."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from argus.cameras import Camera, CameraRegistry, Location, UnknownCameraError, redact_url
from argus.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def _cam(id_: str, *, url: str = "rtsp://10.0.0.1/stream", fps: object = 5, lat: object = 52.5, extra: str = "") -> str:
    return f"""
[[camera]]
id = "{id_}"
name = "Camera {id_}"
url = "{url}"
fps = {fps}
{extra}
[camera.location]
lat = {lat}
lon = 13.4
address = "Pariser Platz 1, Berlin"
zone = "north"
"""


def _write(tmp_path: Path, *entries: str) -> Path:
    p = tmp_path / "cameras.toml"
    p.write_text("".join(entries))
    return p


def test_load_valid_registry_applies_defaults_and_resolves_relative_file_urls(tmp_path: Path) -> None:
    (tmp_path / "clips").mkdir()
    p = tmp_path / "cameras.toml"
    p.write_text(
        _cam("gate-1", url="rtsp://user:pw@10.0.0.7:554/s1")
        + _cam("lobby_2", url="clips/lobby.mp4", fps=2.5)
        + '\n[[camera]]\nid = "usb"\nname = "Desk"\nurl = "device:0"\nenabled = false\n'
        + '[camera.location]\nlat = -33.9\nlon = 151.2\naddress = "Desk"\nzone = "lab"\n'
    )
    reg = CameraRegistry.load(p)
    assert [c.id for c in reg] == ["gate-1", "lobby_2", "usb"]
    assert len(reg) == 3 and "usb" in reg and "nope" not in reg
    lobby = reg.get("lobby_2")
    assert lobby.url == str((tmp_path / "clips" / "lobby.mp4").resolve())
    assert lobby.fps == 2.5 and lobby.enabled is True and not lobby.live
    usb = reg.get("usb")
    assert usb.fps == 5.0 and usb.enabled is False and usb.live
    assert usb.location == Location(lat=-33.9, lon=151.2, address="Desk", zone="lab")
    assert [c.id for c in reg.enabled()] == ["gate-1", "lobby_2"]
    assert reg.get("gate-1").live


def test_cameras_are_frozen(tmp_path: Path) -> None:
    cam = CameraRegistry.load(_write(tmp_path, _cam("a"))).get("a")
    with pytest.raises(ValidationError):
        cam.fps = 10


def test_bad_fps_names_file_entry_and_field(tmp_path: Path) -> None:
    p = _write(tmp_path, _cam("gate-1"), _cam("gate-2"), _cam("gate-3", fps=500))
    with pytest.raises(ConfigError) as ei:
        CameraRegistry.load(p)
    assert str(ei.value) == f"{p}: camera[2] 'gate-3': fps: expected 0 < fps <= 60, got 500"
    assert "cameras.toml: camera[2] 'gate-3': fps: expected 0 < fps <= 60, got 500" in str(ei.value)


@pytest.mark.parametrize("fps", [0, -1])
def test_non_positive_fps_is_rejected(tmp_path: Path, fps: int) -> None:
    with pytest.raises(ConfigError, match=rf"camera\[0\] 'a': fps: expected 0 < fps <= 60, got {fps}"):
        CameraRegistry.load(_write(tmp_path, _cam("a", fps=fps)))


def test_bad_latitude_names_the_nested_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as ei:
        CameraRegistry.load(_write(tmp_path, _cam("a"), _cam("b", lat=91.5)))
    assert str(ei.value).endswith("cameras.toml: camera[1] 'b': location.lat: expected -90 <= lat <= 90, got 91.5")


def test_duplicate_id_points_at_the_first_definition(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as ei:
        CameraRegistry.load(_write(tmp_path, _cam("a"), _cam("b"), _cam("a")))
    assert str(ei.value).endswith("cameras.toml: camera[2] 'a': id: duplicate of camera[0]")


def test_unknown_field_is_rejected_and_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as ei:
        CameraRegistry.load(_write(tmp_path, _cam("a", extra='resolution = "1080p"')))
    msg = str(ei.value)
    assert "cameras.toml: camera[0] 'a': resolution: unknown field; expected one of id, name, url, fps" in msg


def test_every_problem_is_reported_at_once_one_line_each(tmp_path: Path) -> None:
    bad = _cam("Bad Id!", url="ftp://files.example/x", fps='"5"', lat=200)
    with pytest.raises(ConfigError) as ei:
        CameraRegistry.load(_write(tmp_path, bad))
    lines = str(ei.value).splitlines()
    assert len(lines) == 4
    assert all(line.startswith(f"{tmp_path / 'cameras.toml'}: camera[0] 'Bad Id!': ") for line in lines)
    joined = "\n".join(lines)
    assert "id: expected a slug (" in joined
    assert "url: expected rtsp://, rtsps://, http(s)://, file://, device:N or a file path, got 'ftp://" in joined
    assert "fps: expected a valid number, got '5'" in joined
    assert "location.lat: expected -90 <= lat <= 90, got 200" in joined


def test_missing_location_field_is_named(tmp_path: Path) -> None:
    p = tmp_path / "cameras.toml"
    p.write_text('[[camera]]\nid = "a"\nname = "A"\nurl = "x.mp4"\n[camera.location]\nlat = 1.0\nlon = 2.0\n'
                 'address = "somewhere"\n')
    with pytest.raises(ConfigError, match=r"camera\[0\] 'a': location.zone: missing required field"):
        CameraRegistry.load(p)


def test_wrong_top_level_table_name_gets_a_hint(tmp_path: Path) -> None:
    entry = _cam("a").replace("[[camera]]", "[[cameras]]").replace("[camera.location]", "[cameras.location]")
    p = _write(tmp_path, entry)
    with pytest.raises(ConfigError, match=r"unknown top-level key\(s\) 'cameras'; expected only \[\[camera\]\] tables"):
        CameraRegistry.load(p)


def test_invalid_toml_and_missing_file_name_the_file(tmp_path: Path) -> None:
    p = tmp_path / "cameras.toml"
    p.write_text("[[camera]\nid = ")
    with pytest.raises(ConfigError, match=r"cameras.toml: invalid TOML"):
        CameraRegistry.load(p)
    with pytest.raises(ConfigError, match=r"nope.toml: cannot read camera registry"):
        CameraRegistry.load(tmp_path / "nope.toml")


def test_empty_registry_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="expected at least one \\[\\[camera\\]\\] table, got none"):
        CameraRegistry.load(_write(tmp_path, "# no cameras yet\n"))


def test_unknown_camera_id_lists_known_ids_and_is_a_key_error(tmp_path: Path) -> None:
    reg = CameraRegistry.load(_write(tmp_path, _cam("b"), _cam("a")))
    with pytest.raises(UnknownCameraError) as ei:
        reg.get("x")
    assert str(ei.value) == "unknown camera id 'x'; known: a, b"
    assert isinstance(ei.value, ConfigError) and isinstance(ei.value, KeyError)


def test_credentials_never_appear_in_repr_or_safe_url(tmp_path: Path) -> None:
    url = "rtsp://admin:hunter2@10.0.0.7:554/live?channel=1&password=hunter2"
    cam = CameraRegistry.load(_write(tmp_path, _cam("a", url=url))).get("a")
    assert cam.url == url  # the real URL is kept for OpenCV
    assert "hunter2" not in repr(cam)
    assert "hunter2" not in cam.safe_url
    assert cam.safe_url == "rtsp://***@10.0.0.7:554/live?channel=1&password=***"
    assert redact_url("/data/clip.mp4") == "/data/clip.mp4"


def test_file_scheme_and_absolute_paths_are_kept_as_paths(tmp_path: Path) -> None:
    clip = REPO / "assets" / "pyfeat" / "single_face.mp4"
    reg = CameraRegistry.load(_write(tmp_path, _cam("a", url=f"file://{clip}"), _cam("b", url=str(clip))))
    assert reg.get("a").url == str(clip) == reg.get("b").url


def test_camera_can_be_built_in_code_and_registry_rejects_duplicates() -> None:
    loc = Location(lat=0.0, lon=0.0, address="x", zone="z")
    cam = Camera(id="c1", name="C1", url="http://127.0.0.1:8080/video.mjpg", location=loc)
    assert cam.live
    with pytest.raises(ConfigError, match="duplicate camera id"):
        CameraRegistry([cam, cam])


def test_shards_give_every_enabled_camera_exactly_one_reader_and_stay_balanced(tmp_path: Path) -> None:
    ids = [f"cam-{i:02d}" for i in range(11)]
    entries = [_cam(i, extra="enabled = false" if i == "cam-05" else "") for i in ids]
    reg = CameraRegistry.load(_write(tmp_path, *entries))
    shards = [[c.id for c in reg.shard(i, 3)] for i in range(3)]
    flat = sorted(c for s in shards for c in s)
    assert flat == sorted(set(ids) - {"cam-05"})  # each enabled camera once, the disabled one never
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    assert [c.id for c in reg.shard(0, 1)] == flat
    with pytest.raises(ValueError, match="expected 0 <= index < 3, got 3"):
        reg.shard(3, 3)
