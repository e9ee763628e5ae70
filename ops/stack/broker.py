"""The local Apache Kafka broker: KRaft nodes from Maven Central's jars, on 127.0.0.1, storage on disk.

``ensure_kafka_jars`` fetches the one pinned version (``kafka/pom.xml``) with Maven once and caches the
classpath, so later starts need no network. ``KraftCluster`` lays out, formats and starts one node (the
local stack: broker and controller in one process) or several (the chaos suite's replicated cluster), and
can kill, stop and restart a node by id. Nothing here listens beyond 127.0.0.1.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ops.stack.processes import ServiceError, free_port, pid_alive, port_open, spawn, stop_pid, wait_until

LOCAL_HOSTS = {"127.0.0.1", "localhost"}
POM = Path(__file__).with_name("kafka") / "pom.xml"
LOG4J_CONFIG = Path(__file__).with_name("kafka") / "log4j2.properties"
KAFKA_VERSION = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text()).group(1)  # type: ignore[union-attr]


def bootstrap_host_port(bootstrap: str) -> tuple[str, int]:
    first = bootstrap.split(",")[0].strip()
    parts = urlsplit(f"//{first}")
    return parts.hostname or "127.0.0.1", parts.port or 9092


def broker_answers(bootstrap: str, conf: Mapping[str, Any] | None = None, timeout: float = 2.0) -> bool:
    """A metadata request that names at least one broker succeeds (a TCP connect alone is not readiness)."""
    return bool(brokers_seen(bootstrap, conf, timeout))


def brokers_seen(bootstrap: str, conf: Mapping[str, Any] | None = None, timeout: float = 2.0) -> set[int]:
    """The node ids a metadata request through ``bootstrap`` names; empty when it gets no answer."""
    from confluent_kafka.admin import AdminClient

    if not port_open(*bootstrap_host_port(bootstrap)):
        return set()
    admin = AdminClient({**(conf or {}), "bootstrap.servers": bootstrap, "log_level": 0})
    try:
        return set(admin.list_topics(timeout=timeout).brokers)
    except Exception:
        return set()


def cluster_id(bootstrap: str, conf: Mapping[str, Any] | None = None, timeout: float = 5.0) -> str | None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({**(conf or {}), "bootstrap.servers": bootstrap, "log_level": 0})
    try:
        return str(admin.describe_cluster(request_timeout=timeout).result(timeout=timeout).cluster_id)
    except Exception:
        return None


# -- the jars ---------------------------------------------------------------------------------------


def kafka_home() -> Path:
    """Where the pinned version's classpath is cached (shared by every state folder of this user)."""
    if configured := os.environ.get("HEALTHBUS_KAFKA_HOME"):
        return Path(configured)
    return cache_dir() / f"kafka-{KAFKA_VERSION}"


def cache_dir() -> Path:
    """Where the local stack keeps what it fetched once (the broker's jars, the registry)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "healthbus"


def _install_debian(packages: list[str], what: str) -> None:
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise ServiceError(f"broker: {what} is missing. Fix: apt-get install {' '.join(packages)}.")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )


def java_binary() -> str:
    java = shutil.which("java")
    if java is None:
        _install_debian(["openjdk-17-jre-headless"], "a Java runtime (17 or later)")
        java = shutil.which("java") or "/usr/bin/java"
    return java


def ensure_kafka_jars() -> Path:
    """The broker's classpath folder; fetched with Maven on first use (about 45 MB), then reused offline."""
    home = kafka_home()
    lib, done = home / "lib", home / "complete"
    if done.exists():
        return lib
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two `stack up`s at once fetch once
        if done.exists():
            return lib
        java_binary()
        if shutil.which("mvn") is None:
            _install_debian(["maven"], "Maven (it fetches the broker's jars)")
        partial = home / "lib.partial"
        shutil.rmtree(partial, ignore_errors=True)
        started = time.monotonic()
        fetch = subprocess.run(
            ["mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies", f"-DoutputDirectory={partial}"],
            capture_output=True,
            text=True,
        )
        if fetch.returncode != 0:
            raise ServiceError(
                f"broker: fetching Apache Kafka {KAFKA_VERSION} from Maven Central failed:\n"
                f"{fetch.stdout[-2000:]}{fetch.stderr[-2000:]}"
            )
        shutil.rmtree(lib, ignore_errors=True)
        partial.rename(lib)
        done.write_text(f"Apache Kafka {KAFKA_VERSION}, fetched in {time.monotonic() - started:.1f} s\n")
    return lib


# -- nodes and clusters ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SaslSslSecurity:
    """What a secured cluster serves: SASL_SSL with SCRAM-SHA-512 for clients and between brokers (no
    plaintext listener at all), PLAIN over TLS on the controller listener (static users: the quorum must not
    depend on SCRAM credentials kept in the metadata it is loading), ACLs by KRaft's StandardAuthorizer with
    nothing allowed where no ACL says so. ``admin_user`` is a super user, created at format time."""

    keystore_pem: Path  # the node's unencrypted PKCS#8 key followed by its certificate chain
    ca_pem: Path  # the CA that signed it (clients and peers verify against it)
    admin_password: str
    controller_password: str
    admin_user: str = "admin"

    def properties(self) -> dict[str, str]:
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule required"
        plain = "org.apache.kafka.common.security.plain.PlainLoginModule required"
        return {
            "listener.name.client.sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
            "listener.name.client.scram-sha-512.sasl.jaas.config": f'{scram} username="{self.admin_user}" password="{self.admin_password}";',
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config": f'{plain} username="controller" password="{self.controller_password}" '
            f'user_controller="{self.controller_password}";',
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self.keystore_pem),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.ca_pem),
            "ssl.endpoint.identification.algorithm": "https",
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": f"User:{self.admin_user};User:controller",
            "allow.everyone.if.no.acl.found": "false",
        }

    def format_args(self) -> list[str]:
        return ["--add-scram", f"SCRAM-SHA-512=[name={self.admin_user},password={self.admin_password}]"]

    def client_config(self, user: str | None = None, password: str | None = None) -> dict[str, str]:
        """librdkafka settings for ``user`` (default: the admin)."""
        return {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": user or self.admin_user,
            "sasl.password": password or self.admin_password,
            "ssl.ca.location": str(self.ca_pem),
        }


@dataclass
class KraftNode:
    """One combined broker+controller process. Ports are kept across restarts (clients and peers know them)."""

    node_id: int
    port: int
    controller_port: int
    data_dir: Path
    pid: int | None = None

    @property
    def config_path(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "log"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "broker.log"

    def alive(self) -> bool:
        return self.pid is not None and pid_alive(self.pid)


@dataclass
class KraftCluster:
    """``size`` KRaft nodes on 127.0.0.1, each both broker and controller (a static voter set).

    ``properties`` are added to every node's server.properties (they win over the defaults); ``security``
    turns every listener into SASL_SSL with ACLs (``SaslSslSecurity``). A cluster laid out once is restarted
    from its folder with the same ports and cluster id, so its disk state stays valid.
    """

    base_dir: Path
    size: int = 1
    first_port: int | None = None
    heap: str = "1g"
    properties: dict[str, str] = field(default_factory=dict)
    security: SaslSslSecurity | None = None
    nodes: list[KraftNode] = field(default_factory=list)
    cluster_id: str = ""

    def __post_init__(self) -> None:
        meta = self.base_dir / "cluster.properties"
        if meta.exists():  # laid out before: same id and ports, so the disk state stays valid
            saved = dict(line.split("=", 1) for line in meta.read_text().splitlines() if "=" in line)
            self.cluster_id = saved["cluster.id"]
            self.nodes = [
                KraftNode(
                    i,
                    int(saved[f"node.{i}.port"]),
                    int(saved[f"node.{i}.controller.port"]),
                    self.base_dir / f"node-{i}",
                )
                for i in range(1, int(saved["size"]) + 1)
            ]
            self.size = len(self.nodes)
            return
        self.cluster_id = _random_cluster_id()
        ports = [self.first_port] if self.first_port else []
        self.nodes = [
            KraftNode(i, ports[0] if i == 1 and ports else free_port(), free_port(), self.base_dir / f"node-{i}")
            for i in range(1, self.size + 1)
        ]
        self.base_dir.mkdir(parents=True, exist_ok=True)
        lines = [f"cluster.id={self.cluster_id}", f"size={self.size}"]
        for n in self.nodes:
            lines += [f"node.{n.node_id}.port={n.port}", f"node.{n.node_id}.controller.port={n.controller_port}"]
        meta.write_text("\n".join(lines) + "\n")

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def node(self, node_id: int) -> KraftNode:
        return self.nodes[node_id - 1]

    def server_properties(self, node: KraftNode) -> dict[str, str]:
        replicas = str(min(self.size, 3))
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        props = {
            "process.roles": "broker,controller",
            "node.id": str(node.node_id),
            "controller.quorum.voters": voters,
            "listeners": f"CLIENT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
            "advertised.listeners": f"CLIENT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
            "listener.security.protocol.map": "CLIENT:SASL_SSL,CONTROLLER:SASL_SSL"
            if self.security
            else "CLIENT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "CLIENT",
            "controller.listener.names": "CONTROLLER",
            "log.dirs": str(node.log_dir),
            # Topics come from the catalogue (`healthbus topics create`), as in production: a typo is an error.
            "auto.create.topics.enable": "false",
            "num.partitions": "1",
            "default.replication.factor": replicas,
            "min.insync.replicas": "2" if self.size >= 3 else "1",
            "offsets.topic.replication.factor": replicas,
            "offsets.topic.num.partitions": "10",  # 50 by default: slow first group on 2 cores, no gain here
            "transaction.state.log.replication.factor": replicas,
            "transaction.state.log.min.isr": "2" if self.size >= 3 else "1",
            "transaction.state.log.num.partitions": "10",
            "share.coordinator.state.topic.replication.factor": replicas,
            "share.coordinator.state.topic.min.isr": "2" if self.size >= 3 else "1",
            # A new group starts at once instead of waiting 3 s for more members (one worker per stage here).
            "group.initial.rebalance.delay.ms": "0",
            "num.network.threads": "2",
            "num.io.threads": "4",
            "unclean.leader.election.enable": "false",
        }
        if self.security:
            props.update(self.security.properties())
        props.update(self.properties)
        return props

    def _write_config(self, node: KraftNode) -> None:
        node.data_dir.mkdir(parents=True, exist_ok=True)
        node.config_path.write_text("".join(f"{k}={v}\n" for k, v in self.server_properties(node).items()))

    def _format(self, node: KraftNode, lib: Path, extra_args: list[str]) -> None:
        if (node.log_dir / "meta.properties").exists():
            return
        fmt = subprocess.run(
            [
                java_binary(),
                "-cp",
                f"{lib}/*",
                f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
                "kafka.tools.StorageTool",
                "format",
                "--config",
                str(node.config_path),
                f"--cluster-id={self.cluster_id}",
                "--ignore-formatted",
                *extra_args,
            ],
            capture_output=True,
            text=True,
        )
        if fmt.returncode != 0:
            raise ServiceError(
                f"broker: formatting KRaft storage of node {node.node_id} failed: "
                f"{fmt.stdout[-1500:]}{fmt.stderr[-1500:]}"
            )

    @property
    def admin_config(self) -> dict[str, str]:
        """librdkafka settings of a super user (empty on a plaintext cluster)."""
        return self.security.client_config() if self.security else {}

    def start(self, timeout: float = 60) -> None:
        """Format (first time only) and start every node not running; return when the cluster serves."""
        lib = ensure_kafka_jars()
        for node in self.nodes:
            if port_open("127.0.0.1", node.port) and not node.alive():
                raise ServiceError(
                    f"broker: port {node.port} is taken by another process. Fix: free the port or "
                    "set HEALTHBUS_KAFKA_BOOTSTRAP to another 127.0.0.1 port."
                )
            self._write_config(node)
            self._format(node, lib, self.security.format_args() if self.security else [])
        for node in self.nodes:
            if not node.alive():
                self._spawn(node, lib)
        self.wait_ready(timeout)

    def _spawn(self, node: KraftNode, lib: Path) -> None:
        env = {**os.environ, "KAFKA_HEAP_OPTS": ""}
        argv = [
            java_binary(),
            f"-Xms{min_heap(self.heap)}",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            "-cp",
            f"{lib}/*",
            "kafka.Kafka",
            str(node.config_path),
        ]
        node.pid = spawn(argv, node.log_path, env=env).pid

    def wait_ready(self, timeout: float = 60) -> None:
        """Every running node serves metadata and sees every running node as a broker."""
        expected = {n.node_id for n in self.nodes if n.alive()}
        client_conf = self.admin_config

        def ready() -> bool:
            for node in self.nodes:
                if node.pid is not None and not node.alive():
                    raise ServiceError(f"broker: node {node.node_id} exited while starting. See {node.log_path}.")
            return all(
                brokers_seen(f"127.0.0.1:{n.port}", client_conf) >= expected
                for n in self.nodes
                if n.node_id in expected
            )

        wait_until(
            ready, timeout, f"Apache Kafka {KAFKA_VERSION} ({len(expected)} node(s))", f"See {self.nodes[0].log_path}."
        )

    def kill(self, node_id: int) -> None:
        """kill -9: no controlled shutdown, no flush."""
        node = self.node(node_id)
        if node.pid is not None:
            try:
                os.kill(node.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            wait_until(lambda: not node.alive(), 10, f"broker node {node_id} (kill -9)", "")
            node.pid = None

    def stop_node(self, node_id: int, timeout: float = 60) -> None:
        """SIGTERM: a controlled shutdown (leadership moves, logs flushed), then SIGKILL after ``timeout``."""
        node = self.node(node_id)
        if node.pid is not None:
            stop_pid(node.pid, timeout=timeout)
            node.pid = None

    def restart(self, node_id: int, timeout: float = 60) -> None:
        node = self.node(node_id)
        if not node.alive():
            self._spawn(node, ensure_kafka_jars())
        self.wait_ready(timeout)

    def stop(self) -> None:
        # Brokers first, in reverse order, so the last node's controller sees the others leave cleanly.
        for node in reversed(self.nodes):
            self.stop_node(node.node_id, timeout=30)


def min_heap(heap: str) -> str:
    return "256m" if heap.lower().endswith("g") or int(heap.rstrip("mM")) > 256 else heap


def _random_cluster_id() -> str:
    """KRaft's cluster id: 16 random bytes, URL-safe base64 without padding (what `kafka-storage random-uuid`
    prints). Like Kafka's own generator, never one starting with "-", which a command line reads as an option."""
    import base64

    while True:
        cluster = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster.startswith("-"):
            return cluster


@contextmanager
def private_cluster(base_dir: Path, size: int = 1, **kwargs: object) -> Iterator[KraftCluster]:
    """A throwaway cluster for one test or bench: started, yielded, stopped, its folder removed."""
    cluster = KraftCluster(base_dir, size=size, **kwargs)  # type: ignore[arg-type]
    try:
        cluster.start()
        yield cluster
    finally:
        for node in cluster.nodes:
            if node.pid is not None:
                stop_pid(node.pid, timeout=5)
        shutil.rmtree(base_dir, ignore_errors=True)


# -- the local stack's single node ----------------------------------------------------------------


def local_cluster(state_dir: Path, port: int) -> KraftCluster:
    return KraftCluster(state_dir / "kafka", size=1, first_port=port)


def start_local_broker(state_dir: Path, port: int) -> KraftCluster:
    """The stack's broker on 127.0.0.1:port, its log directory under ``state_dir/kafka`` (kept across restarts)."""
    cluster = local_cluster(state_dir, port)
    if cluster.nodes[0].port != port:  # laid out for another port: the disk state belongs to that broker
        raise ServiceError(
            f"broker: {cluster.base_dir} holds a broker for port {cluster.nodes[0].port}, not {port}. "
            f"Fix: set HEALTHBUS_KAFKA_BOOTSTRAP=127.0.0.1:{cluster.nodes[0].port} or remove the folder."
        )
    cluster.start()
    return cluster


def listening_pid(port: int) -> int | None:
    """The local process listening on 127.0.0.1:``port`` (from /proc: the socket's inode, then whose fd it
    is), so a benchmark can read the broker's own CPU time. None when it is not a process of this machine."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(fields[9])
    if not inodes:
        return None
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) in wanted for fd in (proc / "fd").iterdir()):
                return int(proc.name)
        except OSError:
            continue
    return None
