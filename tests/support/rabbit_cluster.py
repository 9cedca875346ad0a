"""Throw-away N-node RabbitMQ 3.10 cluster for pytest (Debian rabbitmq-server; stdlib only).

    with RabbitCluster(size=3) as cluster:  # ~20 s; then cluster.urls, cluster.url
        leader = cluster.queue_leader("events")
        cluster.stop_node(leader)
        new_leader = cluster.wait_for_new_leader("events", leader)

Isolated from any RabbitMQ server on the machine: runs /usr/lib/rabbitmq/bin/* directly (the
/usr/sbin wrappers su to the rabbitmq user and use its cookie); private HOME with a fresh
.erlang.cookie for the nodes and every CLI call; own RABBITMQ_CONF_ENV_FILE, RABBITMQ_CONFIG_FILE
and RABBITMQ_ADVANCED_CONFIG_FILE (nothing in /etc/rabbitmq is read); unique node names; free
AMQP and distribution ports on 127.0.0.1 only. epmd (4369) is shared and never killed. Every
process started here carries MARKER_ENV; teardown and cleanup_stale() kill only such processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

__all__ = ["MARKER_ENV", "ClusterError", "RabbitCluster", "cleanup_stale"]

BIN_DIR = Path("/usr/lib/rabbitmq/bin")
MARKER_ENV = "RABBIT_TEST_CLUSTER_ID"
_OWNER_ENV = "RABBIT_TEST_CLUSTER_OWNER"  # "<pid>:<start time>" of the owning Python process
_DIR_PREFIX = "rabbit-cluster-"
_CONF = """\
listeners.tcp.1 = 127.0.0.1:{amqp_port}
default_user = guest
default_pass = guest
log.file.level = info
log.console = false
disk_free_limit.absolute = 10MB
"""  # low disk_free_limit: a nearly full disk must not block the publishers of a test
_PEER_CONF = """\
cluster_formation.peer_discovery_backend = classic_config
cluster_formation.classic_config.nodes.1 = {seed}
"""
_ENV = """\
HOME={base}/home
LANG=C.UTF-8
LC_ALL=C.UTF-8
ERL_EPMD_ADDRESS=127.0.0.1
RABBITMQ_CONF_ENV_FILE={base}/rabbitmq-env.conf
RABBITMQ_CONFIG_FILE={d}/rabbitmq.conf
RABBITMQ_ADVANCED_CONFIG_FILE={d}/advanced.config
RABBITMQ_ENABLED_PLUGINS_FILE={base}/enabled_plugins
RABBITMQ_MNESIA_BASE={d}/mnesia
RABBITMQ_LOG_BASE={d}/log
RABBITMQ_NODENAME={name}
RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
RABBITMQ_NODE_PORT={amqp_port}
RABBITMQ_DIST_PORT={dist_port}
RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {{127,0,0,1}}
"""
_FOREIGN_ENV = ("RABBITMQ_", "ERL_", "NODENAME", "CONFIG_FILE")  # not inherited by the nodes


class ClusterError(RuntimeError):
    """A node failed to start, the cluster did not form, or a CLI call failed or timed out."""


def _start_time(pid: int) -> str:
    """Start time of *pid* (clock ticks since boot); '' if it is gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return ""
    return "" if fields[0] == "Z" else fields[19]


def _marked_pids(cluster_id: str | None = None) -> list[tuple[int, dict[str, str]]]:
    """(pid, environ) of processes carrying MARKER_ENV (== cluster_id if given), epmd excepted."""
    found = []
    for pid in (int(e) for e in os.listdir("/proc") if e.isdigit()):
        try:
            if pid == os.getpid() or Path(f"/proc/{pid}/comm").read_text() == "epmd\n":
                continue
            items = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        env = {k: v for k, _, v in (item.partition("=") for item in items)}
        if env.get(MARKER_ENV) and cluster_id in (None, env[MARKER_ENV]):
            found.append((pid, env))
    return found


def _kill(pids: list[int], sig: int, group: bool = False) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            (os.killpg if group else os.kill)(pid, sig)


def _terminate(procs: list[subprocess.Popen[bytes]], timeout: float) -> None:
    """SIGTERM each process group (graceful broker stop); SIGKILL it after *timeout* s."""
    _kill([p.pid for p in procs], signal.SIGTERM, group=True)
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _kill([p.pid], signal.SIGKILL, group=True)
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(10)


def cleanup_stale() -> list[int]:
    """SIGKILL the processes of clusters whose owning Python process is dead (e.g. after a
    SIGKILLed pytest run) and remove their temp dirs. Only processes carrying MARKER_ENV are
    touched. Called by RabbitCluster on start; safe any time. Returns the killed PIDs."""
    victims, dirs = [], set()
    for pid, env in _marked_pids():
        owner, _, started = env.get(_OWNER_ENV, "").partition(":")
        if owner.isdigit() and _start_time(int(owner)) == started:
            continue  # owner alive: same pid *and* start time, so not a recycled pid
        victims.append(pid)
        dirs.add(Path(env.get("RABBITMQ_CONF_ENV_FILE", "/nonexistent")).parent)
    _kill(victims, signal.SIGKILL)
    for d in dirs:
        if d.name.startswith(_DIR_PREFIX):
            shutil.rmtree(d, ignore_errors=True)
    return victims


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
        return True
    return False


def _free_ports(count: int) -> list[int]:
    """*count* distinct free TCP ports in 20000-31999 (below Linux's ephemeral range)."""
    ports: list[int] = []
    while len(ports) < count:
        port = 20000 + secrets.randbelow(12000)
        with socket.socket() as s, contextlib.suppress(OSError):
            s.bind(("0.0.0.0", port))  # fails if anything listens on the port, any address
            if port not in ports and port != 25672:
                ports.append(port)
    return ports


@dataclass
class _Node:
    name: str
    amqp_port: int
    dir: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def spawn(self) -> None:
        with open(self.dir / "stdout.log", "ab") as out:
            self.proc = subprocess.Popen(
                [BIN_DIR / "rabbitmq-server"], env=self.env, cwd=self.dir, stdin=subprocess.DEVNULL,
                stdout=out, stderr=out, start_new_session=True,  # own process group, for killpg()
            )  # fmt: skip

    def wait_listening(self, deadline: float) -> None:
        while not _port_open(self.amqp_port):
            if not self.running() or time.monotonic() > deadline:
                why = "timed out" if self.running() else "exited"
                raise ClusterError(f"node {self.name} {why} on boot\n{self.log_tail()}")
            time.sleep(0.5)

    def log_tail(self, lines: int = 30) -> str:
        out = []
        for f in (self.dir / "log" / f"{self.name}.log", self.dir / "stdout.log"):
            with contextlib.suppress(OSError):
                out += [f"--- {f}", *f.read_text(errors="replace").splitlines()[-lines:]]
        return "\n".join(out)


class RabbitCluster:
    """A private cluster of *size* RabbitMQ nodes (indexes 0..size-1, user guest/guest).

    Entering the context starts the nodes and returns once every node runs and the cluster
    reports *size* running nodes; on failure it tears down what had started and raises
    ClusterError (with the failing node's log tail). Leaving stops all nodes, kills this
    cluster's leftover processes and removes its temp dir. Formation: node 0 boots first, the
    others then boot in parallel and join it by classic_config peer discovery (a node that
    still comes up standalone is joined with rabbitmqctl join_cluster).
    """

    def __init__(self, size: int = 3, *, start_timeout: float = 120.0) -> None:
        """*size* >= 1 nodes; *start_timeout*: seconds allowed for the whole start-up."""
        if size < 1:
            raise ValueError("size must be >= 1")
        self.size, self.start_timeout, self.id = size, start_timeout, secrets.token_hex(4)
        self.base_dir: Path | None = None
        self._nodes: list[_Node] = []

    @property
    def urls(self) -> list[str]:
        """One ``amqp://guest:guest@127.0.0.1:PORT/`` URL per node, in node-index order."""
        return [f"amqp://guest:guest@127.0.0.1:{n.amqp_port}/" for n in self._nodes]

    @property
    def url(self) -> str:
        """All node URLs joined by commas."""
        return ",".join(self.urls)

    def __enter__(self) -> Self:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _start(self) -> None:
        cleanup_stale()
        deadline = time.monotonic() + self.start_timeout
        base = self.base_dir = Path(tempfile.mkdtemp(prefix=f"{_DIR_PREFIX}{self.id}-"))
        (base / "home").mkdir()
        (base / "home" / ".erlang.cookie").write_text(secrets.token_hex(16).upper())
        (base / "home" / ".erlang.cookie").chmod(0o400)
        (base / "rabbitmq-env.conf").write_text("# intentionally empty\n")
        (base / "enabled_plugins").write_text("[].\n")
        ports = _free_ports(2 * self.size)
        self._nodes = [self._make_node(base, i, ports[2 * i : 2 * i + 2]) for i in range(self.size)]
        for group in ([0], range(1, self.size)):  # node 0 first: the others join it on boot
            for i in group:
                self._nodes[i].spawn()
            for i in group:
                self._nodes[i].wait_listening(deadline)
        names = [n.name for n in self._nodes]
        members = self._json(0, "cluster_status").get("disk_nodes", [])
        for i in range(1, self.size):  # peer discovery missed it: it booted standalone
            if names[i] not in members:
                for args in (["stop_app"], ["reset"], ["join_cluster", names[0]], ["start_app"]):
                    self._ctl(i, *args)
        running: list[str] = []
        while True:
            with contextlib.suppress(ClusterError):
                running = self._json(0, "cluster_status").get("running_nodes", [])
                if sorted(running) == sorted(names):
                    return
            if time.monotonic() > deadline:
                raise ClusterError(f"cluster did not form; running nodes: {running}")
            time.sleep(0.5)

    def _make_node(self, base: Path, i: int, ports: list[int]) -> _Node:
        (amqp_port, dist_port), seed = ports, f"rct-{self.id}-1@localhost"
        name, d = f"rct-{self.id}-{i + 1}@localhost", base / f"node{i + 1}"
        (d / "log").mkdir(parents=True)
        conf = _CONF + (_PEER_CONF if i > 0 else "")  # node 0 is the seed the others join
        (d / "rabbitmq.conf").write_text(conf.format(amqp_port=amqp_port, seed=seed))
        env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN_ENV)}
        fmt = _ENV.format(base=base, d=d, name=name, amqp_port=amqp_port, dist_port=dist_port)
        env |= {k: v for k, _, v in (line.partition("=") for line in fmt.splitlines())}
        env |= {MARKER_ENV: self.id, _OWNER_ENV: f"{os.getpid()}:{_start_time(os.getpid())}"}
        return _Node(name, amqp_port, d, env)

    def _ctl(self, i: int, *args: str, tool: str = "rabbitmqctl", timeout: float = 60) -> str:
        """Run a CLI tool against node *i* and return its stdout; ClusterError if it fails."""
        node, cmd = self._nodes[i], [str(BIN_DIR / tool), "-q", "-n", self._nodes[i].name, *args]
        try:
            r = subprocess.run(
                cmd, env=node.env, cwd=node.dir, stdin=subprocess.DEVNULL, capture_output=True,
                text=True, timeout=timeout,
            )  # fmt: skip
        except subprocess.TimeoutExpired as e:
            raise ClusterError(f"{' '.join(cmd)}: timed out after {timeout} s") from e
        if r.returncode != 0:
            raise ClusterError(f"{' '.join(cmd)}: exit code {r.returncode}\n{r.stdout}{r.stderr}")
        return r.stdout

    def _json(self, i: int, *args: str, tool: str = "rabbitmqctl") -> Any:
        out = self._ctl(i, *args, "--formatter", "json", tool=tool)
        try:
            return json.loads(out)
        except ValueError as e:
            raise ClusterError(f"{tool} {' '.join(args)}: no JSON in {out!r}") from e

    def queue_leader(self, queue: str, vhost: str = "/") -> int:
        """Index of the node hosting the Raft leader of quorum queue *queue*, as reported by
        ``rabbitmq-queues quorum_status`` on the first running node (one CLI call, ~1 s).
        Raises ClusterError if the queue does not exist or has no leader at the moment."""
        via = next((i for i, n in enumerate(self._nodes) if n.running()), 0)
        members = self._json(via, "quorum_status", "--vhost", vhost, queue, tool="rabbitmq-queues")
        names = [n.name for n in self._nodes]
        for m in members:
            if str(m.get("Raft State")).lower() == "leader" and m.get("Node Name") in names:
                return names.index(m["Node Name"])
        raise ClusterError(f"quorum queue {queue!r} has no leader now: {members}")

    def wait_for_new_leader(
        self, queue: str, old: int, timeout: float = 30, vhost: str = "/"
    ) -> int:
        """Poll queue_leader() (~1.5 s per round) until quorum queue *queue* has a leader on a
        node other than index *old*; return that index. Raises ClusterError (with the last
        error seen) if none appears within *timeout* seconds."""
        deadline, last = time.monotonic() + timeout, ""
        while time.monotonic() < deadline:
            try:
                if (leader := self.queue_leader(queue, vhost)) != old:
                    return leader
            except ClusterError as e:
                last = str(e)
            time.sleep(0.5)
        raise ClusterError(f"no new leader for {queue!r} within {timeout} s; last: {last}")

    def stop_node(self, index: int, timeout: float = 30) -> None:
        """Stop node *index* gracefully: SIGTERM to its process group (SIGKILL after *timeout*
        seconds); return once the process has exited and its AMQP port is closed. No-op if the
        node is not running. Raises ClusterError if the port is still open 10 s after exit."""
        node = self._nodes[index]
        if node.proc is not None and node.running():
            _terminate([node.proc], timeout)
        deadline = time.monotonic() + 10
        while _port_open(node.amqp_port):
            if time.monotonic() > deadline:
                raise ClusterError(f"node {index} exited, but port {node.amqp_port} is open")
            time.sleep(0.1)

    def close(self) -> None:
        """Stop all nodes (SIGTERM, SIGKILL after 20 s), SIGKILL any other process carrying
        this cluster's marker (CLI VMs, ...), remove the temp dir. Idempotent."""
        _terminate([n.proc for n in self._nodes if n.proc is not None and n.running()], 20)
        for _ in range(50):
            if not (left := [pid for pid, _ in _marked_pids(self.id)]):
                break
            _kill(left, signal.SIGKILL)
            time.sleep(0.1)
        if self.base_dir is not None:
            shutil.rmtree(self.base_dir, ignore_errors=True)
