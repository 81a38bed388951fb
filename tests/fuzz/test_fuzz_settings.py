"""Fuzz settings parsing: any ``ARGUS_*`` environment gives Settings or a ConfigError, never another exception, and
no secret (a ``SecretStr`` setting's value) ever appears in the message. The environment is set per example and
restored after it."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from fuzzing import EXAMPLES, FUZZ, budget
from hypothesis import given
from hypothesis import strategies as st

from argus.config import TOOL_VARIABLES, Settings, load_settings
from argus.errors import ConfigError

FIELDS = sorted(Settings.model_fields)
SECRETS = [n for n, f in Settings.model_fields.items() if "SecretStr" in str(f.annotation)]
KNOWN = {f"ARGUS_{n.upper()}" for n in FIELDS} | TOOL_VARIABLES
MARK = "SeCrEt"  # every secret value carries it; no other strategy produces it

env_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30)
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
                           max_leaves=8)
deep_json = st.integers(1, 5000).flatmap(lambda n: st.sampled_from(["[" * n + "]" * n, '{"a":' * n + "1" + "}" * n]))
value = st.one_of(
    env_text,
    st.integers(-(10**20), 10**20).map(str),
    st.floats().map(str),
    st.sampled_from(["", " ", "0", "1", "-1", "true", "false", "yes", "none", "null", "nan", "inf", "1e400", "[]", "{}",
                     "memory", "kafka", "onnxruntime", "triton", "sqlite", "mongodb", "faiss", "mtcnn", "blazeface",
                     "centerface",
                     "flat", "hnsw", "DEBUG", "info", "log,webhook", "webhook", "log, kafka ,", '["log"]',
                     '{"vip": 0.8}', '{"gate-3": 2}', "65535", "65536", "/tmp/x", "~nobody/x"]),
    json_values.map(json.dumps),
    deep_json,
)
short_env_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=10)
secret = st.one_of(env_text.map(lambda s: MARK + s), short_env_text.map(lambda s: f"mongodb://u:{MARK}{s}@h/db"),
                   short_env_text.map(lambda s: f"https://hooks.example/x?token={MARK}{s}"))
unknown = st.from_regex(r"(ARGUS|argus|Argus)_[A-Za-z0-9_]{0,16}", fullmatch=True).filter(
    lambda n: n.upper() not in KNOWN)


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: v for k, v in os.environ.items() if k.upper().startswith("ARGUS_")}
    for k in saved:
        del os.environ[k]
    os.environ.update(values)
    try:
        yield
    finally:
        for k in [k for k in os.environ if k.upper().startswith("ARGUS_")]:
            del os.environ[k]
        os.environ.update(saved)


def check(env: dict[str, str]) -> str | None:
    """The property: Settings or a ConfigError without secrets; returns the error message, if any."""
    with environment(env):
        try:
            settings = load_settings()
        except ConfigError as e:
            msg = str(e)
            assert MARK not in msg, msg
            return msg
    assert isinstance(settings, Settings)
    assert MARK not in repr(settings) and MARK not in str(settings.redacted())
    return None


def var(name: str, lower: bool) -> str:
    return f"argus_{name}" if lower else f"ARGUS_{name.upper()}"


@pytest.mark.parametrize("field", FIELDS)
@budget(max(10, EXAMPLES // 8))
@given(v=value, lower=st.booleans())
def test_any_value_of_each_setting_gives_settings_or_config_error(field: str, v: str, lower: bool) -> None:
    msg = check({var(field, lower): v})
    assert msg is None or msg.startswith("invalid configuration:")


@FUZZ
@given(env=st.dictionaries(st.sampled_from(FIELDS), value, max_size=6), secrets=st.fixed_dictionaries(
    {}, optional={n: secret for n in SECRETS}), unknowns=st.lists(unknown, max_size=3, unique_by=str.upper),
    lower=st.booleans())
def test_any_environment_gives_settings_or_config_error_without_secrets(
        env: dict[str, str], secrets: dict[str, str], unknowns: list[str], lower: bool) -> None:
    names = {var(k, lower): v for k, v in {**env, **secrets}.items()} | dict.fromkeys(unknowns, "1")
    msg = check(names)
    for name in unknowns:  # every unknown ARGUS_* name is refused by name
        assert msg is not None and name in msg, msg


# -- regressions: the minimal inputs the properties found ------------------------------------------------------------
def test_a_settings_wide_error_does_not_echo_the_secrets() -> None:
    # a model-level error (loc ()) was shown with its input: every setting, the MongoDB URI included
    msg = check({"ARGUS_SINKS": "webhook", "ARGUS_MONGO_URI": f"mongodb://u:{MARK}@h"})
    assert msg and "ARGUS_WEBHOOK_URL is not set" in msg
    msg = check({"ARGUS_INGEST_SHARDS": "2", "ARGUS_INGEST_SHARD": "5", "ARGUS_WEBHOOK_URL": f"https://h/?t={MARK}"})
    assert msg and "ARGUS_INGEST_SHARD" in msg


def test_deeply_nested_json_is_a_config_error_not_recursion_error() -> None:
    msg = check({"ARGUS_WATCHLIST_THRESHOLDS": "[" * 100_000})
    assert msg and "JSON" in msg
