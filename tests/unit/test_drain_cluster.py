"""LocalCluster's replicas, without servers: what each member process is started with."""

from __future__ import annotations

from pathlib import Path

import pytest

from argus.errors import ConfigError
from argus_dev.cluster import ClusterError, LocalCluster, Servers

CAMERAS = Path(__file__).resolve().parents[2] / "assets" / "demo" / "cameras.toml"
NOWHERE = Servers(kafka="127.0.0.1:9", triton="127.0.0.1:9", mongo_uri="mongodb://127.0.0.1:9")


def test_each_replica_is_its_own_process_with_its_own_port_log_and_ingest_shard(tmp_path: Path):
    c = LocalCluster(servers=NOWHERE, data_dir=tmp_path, cameras_file=CAMERAS, exit_when_drained=True,
                     replicas={"ingest": 2, "inference": 3})
    assert {s: len(ms) for s, ms in c.members.items()} == {"ingest": 2, "inference": 3, "matcher": 1, "alerter": 1}
    ps = c.all_members()
    assert len({p.metrics_port for p in ps}) == len({p.log_path for p in ps}) == len(ps) == 7
    assert [p.log_path.name for p in c.members["inference"]] == ["inference.log", "inference-1.log", "inference-2.log"]
    assert [(p.env["ARGUS_INGEST_SHARDS"], p.env["ARGUS_INGEST_SHARD"]) for p in c.members["ingest"]] == [
        ("2", "0"), ("2", "1")]
    assert all(p.args == ("--exit-when-drained",) for p in ps)
    assert c.procs["inference"] is c.members["inference"][0]
    with pytest.raises(ClusterError, match="consuming stage"):
        c.add_member("ingest")  # a third ingest shard would read no camera: only consumers join mid-stream


def test_replicas_name_known_stages_only(tmp_path: Path):
    with pytest.raises(ConfigError, match="replicas"):
        LocalCluster(servers=NOWHERE, data_dir=tmp_path, cameras_file=CAMERAS, replicas={"inferense": 2})
    with pytest.raises(ConfigError, match="replicas"):
        LocalCluster(servers=NOWHERE, data_dir=tmp_path, cameras_file=CAMERAS, replicas={"matcher": 0})
