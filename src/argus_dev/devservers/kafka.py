"""Apache Kafka in KRaft mode (one node is broker and controller), run from Maven Central jars.

No Kafka tarball is reachable from here, but Maven Central carries ``org.apache.kafka:kafka_2.13`` with its
whole dependency tree, and that is all ``kafka.Kafka`` needs: a generated pom plus
``mvn dependency:copy-dependencies`` gives a ``libs/`` directory equivalent to the distribution's.

With ``security`` (:class:`~argus_dev.devservers.security.Security`) the broker has no plaintext door: the client
listener is SASL_SSL (SCRAM-SHA-512, PEM keystore/truststore), the KRaft controller listener is SSL, and the SCRAM
users (the client user and the broker's own inter-broker user) are written into the metadata log when the storage
is formatted, so they exist from the first second. Without it the broker is plaintext, as every other test expects.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from argus_dev.devservers import HOST, DevServerError, Launch, ServerSpec, install_once, run_checked
from argus_dev.devservers.security import Security, scram_credential

log = logging.getLogger(__name__)

KAFKA_VERSION = "4.4.0"
#: kafka_2.13's pom brings slf4j-api but no binding (the distribution adds log4j2); without one the broker logs
#: nothing, which makes a failed start opaque. slf4j-simple needs no config file; it must match slf4j-api 1.7.
SLF4J_BINDING = ("org.slf4j", "slf4j-simple", "1.7.36")
#: A 1080p JPEG is 0.3–1 MB; 4 MiB leaves room for 4K frames and batched envelopes.
MESSAGE_MAX_BYTES = 4 * 1024 * 1024
#: The one SASL mechanism a secure dev broker enables (what production's Strimzi listener uses).
SASL_MECHANISM = "SCRAM-SHA-512"

_POM = """<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>argus.dev</groupId>
  <artifactId>kafka-server</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{kafka}</version>
    </dependency>
    <dependency>
      <groupId>{bg}</groupId>
      <artifactId>{ba}</artifactId>
      <version>{bv}</version>
    </dependency>
  </dependencies>
</project>
"""

#: slf4j-simple levels: INFO for the broker's life cycle, WARN for the chatty config dumps.
_LOG_PROPS = [
    "-Dorg.slf4j.simpleLogger.defaultLogLevel=info",
    "-Dorg.slf4j.simpleLogger.showDateTime=true",
    "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSS",
    "-Dorg.slf4j.simpleLogger.log.org.apache.kafka.common.config=warn",
    "-Dorg.slf4j.simpleLogger.log.kafka.server.KafkaConfig=warn",
    "-Dorg.slf4j.simpleLogger.log.org.apache.kafka.common.utils.AppInfoParser=warn",
]


def java() -> str:
    exe = shutil.which("java")
    if exe is None:
        raise DevServerError("kafka: expected a Java 17+ runtime on PATH (apt-get install openjdk-17-jre-headless)")
    return exe


class KafkaServer(ServerSpec):
    name = "kafka"
    port_keys = ("kafka", "kafka_controller")
    cmdline_marker = "kafka.Kafka"
    ready_timeout_s = 90.0
    stop_timeout_s = 30.0

    def __init__(self) -> None:
        #: broker port -> kafka-python security kwargs, for the readiness probe of a secure broker this process
        #: started (``ready`` only gets the ports).
        self._client_security: dict[int, dict[str, Any]] = {}

    def install_dir(self, home: Path) -> Path:
        return home / "kafka" / KAFKA_VERSION

    def install(self, home: Path) -> None:
        root = self.install_dir(home)

        def install() -> None:
            mvn = shutil.which("mvn")
            if mvn is None:
                raise DevServerError("kafka: expected Maven (mvn) on PATH to fetch the broker jars")
            bg, ba, bv = SLF4J_BINDING
            (root / "pom.xml").write_text(_POM.format(kafka=KAFKA_VERSION, bg=bg, ba=ba, bv=bv))
            libs = root / "libs"
            if libs.exists():
                shutil.rmtree(libs)
            run_checked([mvn, "-q", "-B", f"-Dmaven.repo.local={home / 'kafka' / 'm2'}",
                         "dependency:copy-dependencies", f"-DoutputDirectory={libs}", "-DincludeScope=runtime"],
                        what="kafka: fetching jars from Maven Central", cwd=root)
            if not any(libs.glob("kafka_2.13-*.jar")):
                raise DevServerError(f"kafka: expected kafka_2.13-{KAFKA_VERSION}.jar in {libs}, found none")

        install_once(root, KAFKA_VERSION, install, what="kafka")

    def prepare(self, home: Path, data_dir: Path, ports: Mapping[str, int], options: Mapping[str, Any]) -> Launch:
        root = self.install_dir(home)
        classpath = f"{root / 'libs'}/*"
        logs = data_dir / "kraft-logs"
        conf = data_dir / "server.properties"
        broker, controller = ports["kafka"], ports["kafka_controller"]
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{HOST}:{controller}",
            "listeners": f"PLAINTEXT://{HOST}:{broker},CONTROLLER://{HOST}:{controller}",
            "advertised.listeners": f"PLAINTEXT://{HOST}:{broker}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(logs),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "3",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # Topics are created explicitly by the project (partitions, retention); a typo must fail loudly.
            "auto.create.topics.enable": "false",
            "message.max.bytes": str(MESSAGE_MAX_BYTES),
            "replica.fetch.max.bytes": str(MESSAGE_MAX_BYTES),
            "socket.request.max.bytes": str(4 * MESSAGE_MAX_BYTES),
            "log.retention.hours": "24",
            "log.segment.bytes": str(64 * 1024 * 1024),
        }
        security: Security | None = options.get("security")
        scram_args: list[str] = []
        data_dir.mkdir(parents=True, exist_ok=True)
        if security is not None:
            props.update(_secure_properties(security, data_dir, broker=broker, controller=controller))
            for user, password in ((security.username, security.password),
                                   (security.broker_username, security.broker_password)):
                salt, salted = scram_credential(SASL_MECHANISM, password)
                scram_args += ["--add-scram", f'{SASL_MECHANISM}=[name={user},iterations=8192,salt="{salt}",'
                                              f'saltedpassword="{salted}"]']
            self._client_security[broker] = client_security(security)
        for key, value in dict(options.get("kafka_properties", {})).items():
            props[str(key)] = str(value)
        conf.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        conf.chmod(0o600)  # a secure broker's file holds its inter-broker password
        if not (logs / "meta.properties").is_file():
            cluster_id = run_checked([java(), "-cp", classpath, "kafka.tools.StorageTool", "random-uuid"],
                                     what="kafka: cluster id").strip().splitlines()[-1]
            run_checked([java(), "-cp", classpath, "kafka.tools.StorageTool", "format", "-t", cluster_id,
                         "-c", str(conf), "--ignore-formatted", *scram_args], what="kafka: formatting KRaft storage")
        cmd = [java(), "-Xms256m", "-Xmx512m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true",
               *_LOG_PROPS, "-cp", classpath, "kafka.Kafka", str(conf)]
        return Launch(cmd=cmd, cwd=data_dir, extra={"kafka_version": KAFKA_VERSION})

    def ready(self, ports: Mapping[str, int]) -> bool:
        try:
            from kafka import KafkaAdminClient
        except ImportError as e:
            raise DevServerError("kafka: the readiness check needs kafka-python (argus-watch[kafka])") from e
        admin = KafkaAdminClient(bootstrap_servers=self.address(ports), request_timeout_ms=3000,
                                 client_id="argus-dev-ready", **self._client_security.get(ports["kafka"], {}))
        try:
            # A metadata round trip that needs the controller: the broker is registered and serving.
            admin.describe_cluster()
            admin.list_topics()
            return True
        finally:
            admin.close()

    def address(self, ports: Mapping[str, int]) -> str:
        return f"{HOST}:{ports['kafka']}"


def client_security(security: Security) -> dict[str, Any]:
    """kafka-python keyword arguments of a client of a secure dev broker (as ``security.username``)."""
    return {"security_protocol": "SASL_SSL", "sasl_mechanism": SASL_MECHANISM,
            "sasl_plain_username": security.username, "sasl_plain_password": security.password,
            "ssl_cafile": str(security.tls.ca_cert), "ssl_check_hostname": True}


def _secure_properties(security: Security, data_dir: Path, *, broker: int, controller: int) -> dict[str, str]:
    """server.properties of a broker whose only doors are SASL_SSL (clients, itself) and SSL (the controller)."""
    tls = security.tls
    # A PEM keystore is one file: the private key, then the certificate chain.
    keystore = data_dir / "keystore.pem"
    keystore.write_text(tls.server_key.read_text() + tls.server_cert.read_text())
    keystore.chmod(0o600)
    jaas = (f'org.apache.kafka.common.security.scram.ScramLoginModule required '
            f'username="{security.broker_username}" password="{security.broker_password}";')
    return {
        "listeners": f"SASL_SSL://{HOST}:{broker},CONTROLLER://{HOST}:{controller}",
        "advertised.listeners": f"SASL_SSL://{HOST}:{broker}",
        "inter.broker.listener.name": "SASL_SSL",
        "listener.security.protocol.map": "SASL_SSL:SASL_SSL,CONTROLLER:SSL",
        "sasl.enabled.mechanisms": SASL_MECHANISM,
        "sasl.mechanism.inter.broker.protocol": SASL_MECHANISM,
        f"listener.name.sasl_ssl.{SASL_MECHANISM.lower()}.sasl.jaas.config": jaas,
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(keystore),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(tls.ca_cert),
        "ssl.client.auth": "none",
        "ssl.endpoint.identification.algorithm": "https",
    }
