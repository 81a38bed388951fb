"""Apache Kafka bus over kafka-python.

Producer settings favour not losing acknowledged frames over latency: ``acks=all`` with the idempotent producer
(no duplicates from producer retries, order kept per partition). Consumers never auto-commit; the stage runner
commits after its own outputs were flushed. Errors from kafka-python are translated into BusError naming the
topic and broker.

Every client the bus builds (producer, consumers, the admin and offset readers) gets the same
:class:`KafkaSecurity`: TLS and/or SASL (SCRAM-SHA-512 in production), so no connection is ever opened in plaintext
by one forgotten code path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from argus.bus.base import Record
from argus.errors import BusError, BusUnavailable
from argus.schemas import TOPIC_ALERTS, TOPIC_CONTROL, TOPIC_DEADLETTER

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # a 4K JPEG frame fits; matches the topic's max.message.bytes
TOPIC_CONFIG = {
    "max.message.bytes": str(MAX_MESSAGE_BYTES),
    "retention.ms": str(6 * 3600 * 1000),  # frames are transient; history lives in MongoDB
    "cleanup.policy": "delete",
}
#: Topics people read after the fact keep a week: alerts for downstream consumers that were down over a weekend
#: night, dead letters so an operator who notices failures the next morning still has the payloads to replay.
KEEP_A_WEEK = {"retention.ms": str(7 * 24 * 3600 * 1000)}
#: The control topic keeps each stage instance's latest state (its key) for as long as the topic exists.
COMPACTED = {"cleanup.policy": "compact", "retention.ms": "-1"}
TOPIC_OVERRIDES: dict[str, dict[str, str]] = {TOPIC_ALERTS: KEEP_A_WEEK, TOPIC_DEADLETTER: KEEP_A_WEEK,
                                              TOPIC_CONTROL: COMPACTED}


#: A commit (or a lag read) the broker does not answer in this time raises BusUnavailable, which the runner waits
#: out with its own capped backoff: kafka-python's default (30 s) would hide a broker outage inside one call.
COMMIT_TIMEOUT_MS = 5_000
LAG_TIMEOUT_MS = 1_000


def _retriable(exc: object) -> bool:
    """kafka-python marks errors a retry can fix (timeouts, leader elections, a broker restarting)."""
    from kafka.errors import KafkaTimeoutError

    return isinstance(exc, KafkaTimeoutError) or bool(getattr(exc, "retriable", False))


#: kafka-python's names for the listener protocols; SASL_PLAINTEXT only with ``allow_sasl_plaintext``.
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_SSL", "SASL_PLAINTEXT")
SASL_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")


@dataclass(frozen=True, kw_only=True)
class KafkaSecurity:
    """How every connection to the brokers is protected. The default is the development broker's plaintext.

    Built from settings by :meth:`argus.config.Settings.kafka_security`, which already refused the unsafe mixes;
    the checks here keep a hand-built one (tests, benchmarks) as strict.
    """

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "SCRAM-SHA-512"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    #: PEM bundle of the CAs that sign the brokers' certificates; None: the system trust store.
    cafile: Path | None = None

    def __post_init__(self) -> None:
        from argus.errors import ConfigError

        if self.protocol not in SECURITY_PROTOCOLS:
            raise ConfigError(f"Kafka security protocol: expected one of {', '.join(SECURITY_PROTOCOLS)}, "
                              f"got {self.protocol!r}")
        if self.protocol.startswith("SASL_"):
            if self.sasl_mechanism not in SASL_MECHANISMS:
                raise ConfigError(f"Kafka SASL mechanism: expected one of {', '.join(SASL_MECHANISMS)}, "
                                  f"got {self.sasl_mechanism!r}")
            if not self.username or not self.password:
                raise ConfigError(f"Kafka {self.protocol}: expected a SASL username and password, got "
                                  f"{'a username' if self.username else 'no username'} and "
                                  f"{'a password' if self.password else 'no password'}")

    def client_config(self) -> dict[str, Any]:
        """The kafka-python keyword arguments every client is built with."""
        out: dict[str, Any] = {"security_protocol": self.protocol}
        if self.protocol in ("SSL", "SASL_SSL"):
            # the broker's certificate must name the host we dialled: an encrypted link to the wrong peer is no link
            out.update(ssl_check_hostname=True, ssl_cafile=str(self.cafile) if self.cafile else None)
        if self.protocol.startswith("SASL_"):
            out.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.username,
                       sasl_plain_password=self.password)
        return out


def topic_config(topic: str) -> dict[str, str]:
    """The configs Argus creates ``topic`` with (and deploy/k8s's KafkaTopics must match)."""
    return {**TOPIC_CONFIG, **TOPIC_OVERRIDES.get(topic, {})}


class KafkaBus:
    name = "kafka"

    def __init__(self, *, bootstrap: str, partitions: int = 6, client_id: str = "argus",
                 security: KafkaSecurity | None = None) -> None:
        from kafka import KafkaProducer

        self._bootstrap = bootstrap
        self._partitions = partitions
        self._client_id = client_id
        self._security = security or KafkaSecurity()
        try:
            self._producer = KafkaProducer(
                bootstrap_servers=bootstrap.split(","),
                client_id=client_id,
                **self._security.client_config(),
                acks="all",
                enable_idempotence=True,
                linger_ms=5,
                max_request_size=MAX_MESSAGE_BYTES,
                retries=2**31 - 1,
                delivery_timeout_ms=120_000,
            )
        except Exception as e:
            raise BusError(f"cannot connect a Kafka producer to {bootstrap}: {e}") from e
        self._pending: list[Any] = []

    def _admin(self) -> Any:
        from kafka.admin import KafkaAdminClient

        try:
            return KafkaAdminClient(bootstrap_servers=self._bootstrap.split(","), client_id=self._client_id,
                                    **self._security.client_config())
        except Exception as e:
            raise BusError(f"cannot reach Kafka at {self._bootstrap}: {e}") from e

    def _offsets_reader(self, group: str | None) -> Any:
        """A consumer that never subscribes: it reads offsets (a group's committed ones too) without joining."""
        from kafka import KafkaConsumer

        try:
            return KafkaConsumer(bootstrap_servers=self._bootstrap.split(","), group_id=group,
                                 client_id=f"{self._client_id}-offsets", enable_auto_commit=False,
                                 **self._security.client_config())
        except Exception as e:
            raise BusError(f"cannot reach Kafka at {self._bootstrap} to read offsets: {e}") from e

    def ensure_topics(self, topics: Sequence[str]) -> None:
        from kafka.admin import NewTopic
        from kafka.errors import TopicAlreadyExistsError

        admin = self._admin()
        try:
            existing = set(admin.list_topics())
            new = [
                NewTopic(t, num_partitions=self._partitions, replication_factor=1, topic_configs=topic_config(t))
                for t in topics
                if t not in existing
            ]
            if new:
                try:
                    admin.create_topics(new)
                    log.info("created Kafka topics %s", [t.name for t in new])
                except TopicAlreadyExistsError:
                    pass  # another stage created it between list and create
            # A consumer that subscribes before every partition has a leader gets no assignment until its
            # metadata next refreshes: wait until the topics are really usable.
            admin.wait_for_topics(list(topics), timeout_ms=30_000)
        except Exception as e:
            raise BusError(f"cannot create topics {list(topics)} on {self._bootstrap}: {e}") from e
        finally:
            admin.close()

    def publish(self, topic: str, *, key: bytes | None, value: bytes) -> None:
        try:
            self._pending.append((topic, self._producer.send(topic, key=key, value=value)))
        except Exception as e:
            kind = BusUnavailable if _retriable(e) else BusError
            raise kind(f"cannot publish to {topic!r} ({len(value)} bytes): {e}") from e

    def flush(self, timeout_s: float = 30.0) -> None:
        try:
            self._producer.flush(timeout=timeout_s)
        except Exception as e:
            self._pending = []
            raise BusUnavailable(f"Kafka flush to {self._bootstrap} failed: {e}") from e
        pending, self._pending = self._pending, []
        failed = [(t, f.exception) for t, f in pending if f.failed()]
        unacked = [t for t, f in pending if not f.is_done]
        if failed or unacked:
            t, exc = failed[0] if failed else (unacked[0], "not acknowledged in time")
            transient = not failed or all(_retriable(x) for _, x in failed)
            raise (BusUnavailable if transient else BusError)(
                f"{len(failed) + len(unacked)} message(s) not acknowledged, first on {t!r}: {exc}")

    def pending(self, group: str, topics: Sequence[str]) -> int:
        """Messages on ``topics`` not yet committed by ``group`` — the lag KEDA scales on, and the distributed
        demo's drain check. Reads committed offsets without joining the group, so it never triggers a rebalance."""
        from kafka.structs import TopicPartition

        c = self._offsets_reader(group)
        try:
            tps = [TopicPartition(t, p) for t in topics for p in sorted(c.partitions_for_topic(t) or ())]
            if not tps:
                return 0
            ends, starts = c.end_offsets(tps), c.beginning_offsets(tps)
            total = 0
            for tp in tps:
                committed = c.committed(tp)
                total += max(0, ends[tp] - (committed if committed is not None else starts[tp]))
            return total
        except Exception as e:
            raise BusError(f"cannot read the lag of group {group!r} on {list(topics)} at {self._bootstrap}: "
                           f"{e}") from e
        finally:
            c.close(autocommit=False)

    def end_offsets(self, topic: str) -> list[int]:
        """Per-partition end offsets (messages ever written, for a fresh topic)."""
        from kafka.structs import TopicPartition

        c = self._offsets_reader(None)
        try:
            tps = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or ())]
            ends = c.end_offsets(tps) if tps else {}
            return [int(ends[tp]) for tp in tps]
        except Exception as e:
            raise BusError(f"cannot read the end offsets of {topic!r} at {self._bootstrap}: {e}") from e
        finally:
            c.close(autocommit=False)

    def read_all(self, topic: str, timeout_s: float = 10.0) -> list[Record]:
        """Every record on ``topic`` up to its end offsets now, read without a group (so no rebalance)."""
        from kafka.structs import TopicPartition

        c = self._offsets_reader(None)
        try:
            tps = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or ())]
            if not tps:
                return []
            c.assign(tps)
            ends = c.end_offsets(tps)
            c.seek_to_beginning(*tps)
            out: list[Record] = []
            deadline = time.monotonic() + timeout_s
            while any(c.position(tp) < ends[tp] for tp in tps):
                if time.monotonic() > deadline:
                    raise BusUnavailable(f"reading {topic!r} from {self._bootstrap} took over {timeout_s:.0f}s")
                out += [Record(topic=r.topic, partition=r.partition, offset=r.offset, key=r.key, value=r.value,
                               timestamp_ms=r.timestamp) for rs in c.poll(timeout_ms=200).values() for r in rs]
            return out
        except BusUnavailable:
            raise
        except Exception as e:
            raise BusError(f"cannot read {topic!r} at {self._bootstrap}: {e}") from e
        finally:
            c.close(autocommit=False)

    def delete(self, *, topics: Sequence[str], groups: Sequence[str], timeout_s: float = 30.0) -> None:
        """Delete ``topics`` and ``groups`` and wait until the topics are gone. Only the demo uses this, to start
        from a clean slate on a development broker; nothing in the pipeline ever deletes data."""
        admin = self._admin()
        try:
            existing = set(admin.list_topics())
            doomed = [t for t in topics if t in existing]
            if doomed:
                admin.delete_topics(doomed)
            for g in groups:
                try:
                    admin.delete_groups([g])
                except Exception as e:  # a group that never committed does not exist: nothing to delete
                    log.debug("delete group %s: %s", g, e)
            deadline = time.monotonic() + timeout_s
            while doomed and set(doomed) & set(admin.list_topics()):
                if time.monotonic() > deadline:
                    raise BusError(f"topics {doomed} still exist {timeout_s:.0f}s after deletion at {self._bootstrap}")
                time.sleep(0.2)
        except BusError:
            raise
        except Exception as e:
            raise BusError(f"cannot delete topics {list(topics)} / groups {list(groups)} at {self._bootstrap}: "
                           f"{e}") from e
        finally:
            admin.close()

    def consumer(self, topics: Sequence[str], *, group: str) -> KafkaBusConsumer:
        return KafkaBusConsumer(bootstrap=self._bootstrap, topics=topics, group=group, client_id=self._client_id,
                                security=self._security)

    def close(self) -> None:
        try:
            self._producer.close(timeout=10)
        except Exception as e:
            log.warning("closing the Kafka producer failed: %s", e)


class KafkaBusConsumer:
    def __init__(self, *, bootstrap: str, topics: Sequence[str], group: str, client_id: str,
                 security: KafkaSecurity | None = None) -> None:
        from kafka import KafkaConsumer

        try:
            self._c = KafkaConsumer(
                *topics,
                bootstrap_servers=bootstrap.split(","),
                **(security or KafkaSecurity()).client_config(),
                group_id=group,
                client_id=f"{client_id}-{group}",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                max_partition_fetch_bytes=MAX_MESSAGE_BYTES,
                fetch_max_bytes=4 * MAX_MESSAGE_BYTES,
                session_timeout_ms=10_000,
                heartbeat_interval_ms=1_000,
                max_poll_interval_ms=300_000,
                # see new partitions (scaling out) and recreated topics within 30 s, not the default 5 min
                metadata_max_age_ms=30_000,
            )
        except Exception as e:
            raise BusError(f"cannot join consumer group {group!r} on {bootstrap} for {list(topics)}: {e}") from e
        self._group = group

    def poll(self, *, max_records: int, timeout_s: float) -> list[Record]:
        t0 = time.monotonic()
        try:
            batches = self._c.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        except Exception as e:
            kind = BusUnavailable if _retriable(e) else BusError
            raise kind(f"poll failed for group {self._group!r}: {e}") from e
        if not batches and not self._c.assignment():
            # kafka-python returns at once while the consumer owns no partition (rebalancing, or more replicas
            # than partitions); without this the stage loop would spin a core doing nothing.
            time.sleep(max(0.0, timeout_s - (time.monotonic() - t0)))
        out = [
            Record(topic=r.topic, partition=r.partition, offset=r.offset, key=r.key, value=r.value,
                   timestamp_ms=r.timestamp)
            for records in batches.values()
            for r in records
        ]
        out.sort(key=lambda r: r.timestamp_ms)
        return out

    def commit(self, records: Sequence[Record]) -> None:
        from kafka.structs import OffsetAndMetadata, TopicPartition

        offsets: dict[Any, Any] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            if tp not in offsets or offsets[tp].offset < r.offset + 1:
                offsets[tp] = OffsetAndMetadata(r.offset + 1, "", -1)
        if not offsets:
            return
        from kafka.errors import CommitFailedError, RebalanceInProgressError

        try:
            self._c.commit(offsets, timeout_ms=COMMIT_TIMEOUT_MS)
        except (CommitFailedError, RebalanceInProgressError) as e:
            # The group moved on without us (a rebalance, or our session expired while the broker was away): these
            # partitions' offsets are their next owner's to commit, and it — this consumer too, once its next poll
            # rejoins — gets the records again from the last commit. At-least-once, so not an error to stop for.
            log.warning("group %r: commit of %d partition(s) refused (%s); the records will be delivered again",
                        self._group, len(offsets), e)
        except Exception as e:
            kind = BusUnavailable if _retriable(e) else BusError
            raise kind(f"commit failed for group {self._group!r}: {e}") from e

    def lag(self) -> int:
        try:
            parts = self._c.assignment()
            if not parts:
                return 0
            # Bounded: while the broker is away the default (30 s per call) would stall the stage loop.
            ends = self._c.end_offsets(list(parts), timeout_ms=LAG_TIMEOUT_MS)
            return int(sum(max(0, ends[tp] - self._c.position(tp, timeout_ms=LAG_TIMEOUT_MS)) for tp in parts))
        except Exception:
            return 0  # lag is a metric; never fail the stage over it

    def close(self) -> None:
        try:
            self._c.close(autocommit=False)
        except Exception as e:
            log.warning("closing Kafka consumer of group %s failed: %s", self._group, e)
