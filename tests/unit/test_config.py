import pytest

from argus.config import BusKind, load_settings
from argus.errors import ConfigError


def test_defaults_are_the_embedded_laptop_mode(monkeypatch: pytest.MonkeyPatch):
    for var in ("ARGUS_BUS", "ARGUS_BACKEND", "ARGUS_STORE"):
        monkeypatch.delenv(var, raising=False)
    s = load_settings()
    assert s.bus is BusKind.memory and s.backend.value == "onnxruntime" and s.store.value == "sqlite"


def test_bad_values_are_reported_one_line_each_naming_the_variable(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ARGUS_INFERENCE_BATCH_MAX", "lots")
    monkeypatch.setenv("ARGUS_BUS", "rabbitmq")
    monkeypatch.setenv("ARGUS_COOLDOWNS", "30")
    with pytest.raises(ConfigError) as e:
        load_settings()
    msg = str(e.value)
    assert "ARGUS_INFERENCE_BATCH_MAX" in msg and "'lots'" in msg
    assert "ARGUS_BUS" in msg and "'rabbitmq'" in msg
    assert "ARGUS_COOLDOWNS" in msg  # an unknown name is listed with the bad values, not on a second run


@pytest.mark.parametrize(("var", "expected"), [
    ("ARGUS_COOLDOWNS", "did you mean ARGUS_COOLDOWN_S?"),  # a typo is named, with the setting it resembles
    ("ARGUS_BATCH_MAX", "renamed to ARGUS_INFERENCE_BATCH_MAX"),  # a renamed setting says its new name
    ("ARGUS_FROBNICATE", "argus config --list"),  # nothing close: where to look
])
def test_an_unknown_argus_variable_is_refused_not_ignored(monkeypatch: pytest.MonkeyPatch, var: str, expected: str):
    monkeypatch.setenv(var, "30")
    with pytest.raises(ConfigError, match=var) as e:
        load_settings()
    assert expected in str(e.value)


def test_the_dev_tooling_variables_are_not_settings_but_are_allowed(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ARGUS_DEV_HOME", "/tmp/argus-dev")
    assert load_settings().cooldown_s == 60.0


@pytest.mark.parametrize(("stage", "setting", "default"), [
    ("inference", "ARGUS_INFERENCE_BATCH_MAX", 8),
    ("matcher", "ARGUS_MATCHER_BATCH_MAX", 32),
    ("alerter", "ARGUS_ALERTER_BATCH_MAX", 64),
])
def test_each_consuming_stage_has_its_own_batch_size(monkeypatch: pytest.MonkeyPatch, stage: str, setting: str,
                                                     default: int):
    assert load_settings().batch_max_for(stage) == default
    monkeypatch.setenv(setting, "3")
    assert load_settings().batch_max_for(stage) == 3
    with pytest.raises(ConfigError, match="consuming stage"):
        load_settings().batch_max_for("ingest")


def test_threshold_out_of_range_is_rejected(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ARGUS_WATCHLIST_THRESHOLDS", '{"vip": 1.7}')
    with pytest.raises(ConfigError, match="ARGUS_WATCHLIST_THRESHOLDS.*cosine thresholds in \\[-1, 1\\]"):
        load_settings()


def test_unparsable_json_value_is_a_config_error(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ARGUS_WATCHLIST_THRESHOLDS", "{vip: 0.5")
    with pytest.raises(ConfigError, match="watchlist_thresholds"):
        load_settings()


def test_webhook_sink_requires_a_url(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ARGUS_SINKS", "log,webhook")
    monkeypatch.delenv("ARGUS_WEBHOOK_URL", raising=False)
    with pytest.raises(ConfigError, match="ARGUS_WEBHOOK_URL is not set"):
        load_settings()


def test_secrets_never_appear_in_errors_or_redacted_output(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ARGUS_MONGO_URI", "mongodb://admin:hunter2@db:27017")
    monkeypatch.setenv("ARGUS_SINKS", "log,webhook")
    monkeypatch.setenv("ARGUS_WEBHOOK_URL", "https://hooks.example/T0K3N")
    monkeypatch.setenv("ARGUS_WEBHOOK_SECRET", "whsec-0123456789abcdef")
    s = load_settings()
    shown = str(s.redacted()) + repr(s)
    assert "hunter2" not in shown and "T0K3N" not in shown and "whsec-0123456789abcdef" not in shown
    monkeypatch.setenv("ARGUS_TOP_K", "0")
    with pytest.raises(ConfigError) as e:
        load_settings()
    assert "hunter2" not in str(e.value) and "T0K3N" not in str(e.value)


def test_unknown_sink_is_rejected(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ARGUS_SINKS", "log,pager")
    with pytest.raises(ConfigError, match="expected sinks among log, webhook, kafka; got pager"):
        load_settings()


def test_ingest_shard_comes_from_the_setting_or_the_statefulset_host_name(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ARGUS_INGEST_SHARDS", "4")
    s = load_settings()
    assert s.ingest_shard_index(hostname="argus-ingest-2") == 2
    with pytest.raises(ConfigError, match="ARGUS_INGEST_SHARDS=4 but this replica's shard is unknown.*'laptop'"):
        s.ingest_shard_index(hostname="laptop")
    with pytest.raises(ConfigError, match="'argus-ingest-7'"):
        s.ingest_shard_index(hostname="argus-ingest-7")
    monkeypatch.setenv("ARGUS_INGEST_SHARD", "1")
    assert load_settings().ingest_shard_index(hostname="argus-ingest-2") == 1
    monkeypatch.setenv("ARGUS_INGEST_SHARDS", "1")
    monkeypatch.delenv("ARGUS_INGEST_SHARD")
    assert load_settings().ingest_shard_index(hostname="laptop") == 0


def test_an_ingest_shard_outside_the_shard_count_is_rejected(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ARGUS_INGEST_SHARDS", "2")
    monkeypatch.setenv("ARGUS_INGEST_SHARD", "2")
    with pytest.raises(ConfigError, match=r"ARGUS_INGEST_SHARD: expected 0\.\.1 \(ARGUS_INGEST_SHARDS=2\), got 2"):
        load_settings()
