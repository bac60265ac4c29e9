"""Names and places of one local cluster, and its state file: everything ``down`` needs to find what ``up`` made.

Every host resource is named from the cluster name, so a second cluster never collides with the first and a
``down`` after ``provision-min`` was killed can still find what exists (``sweep`` patterns). Interface names
must fit Linux's 15 characters, so links carry a short hash of the cluster name instead of the name itself.

The state file (``cloud.json``, mode 0600: it holds the dashboard password) is written *before* each resource
is created, so it names everything that may exist; ``down`` removes what it names and then what the naming
patterns find, and tolerates what is already gone.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import json
import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from provision_min.errors import InputError
from provision_min.files import read_private, write_private
from provision_min.local.as_state import AsState

STATE_ROOT_ENV = "PROVISION_MIN_LOCAL_ROOT"
DEFAULT_STATE_ROOT = Path("/var/lib/provision-min/local")
STATE_VERSION = 1
#: where an unset ``--subnet`` is taken from: the first /24 of this range that no host interface (and no
#: other local cluster) uses
AUTO_SUBNETS = ipaddress.IPv4Network("10.231.0.0/16")
METADATA_IP = "169.254.169.254"
AGENT_IP_OFFSET = 100  #: agents get .100, .101, ... (masters .10, .11, ... as on OTC)
AS_PORT = 8180  #: the local AS service, on this machine's bridge address
AS_PREFIX = "/autoscaling-api/v1/local"  #: OTC's path with the project id ``local``


def state_root() -> Path:
    return Path(os.environ.get(STATE_ROOT_ENV) or DEFAULT_STATE_ROOT)


@dataclass(frozen=True)
class Names:
    """Host-side names of a cluster's resources."""

    cluster: str

    @property
    def _hash(self) -> str:
        return hashlib.sha256(self.cluster.encode()).hexdigest()[:8]

    @property
    def bridge(self) -> str:
        return f"bal{self._hash}"

    @property
    def gateway_veth(self) -> str:
        return f"bal{self._hash}g"

    @property
    def metadata_veth(self) -> str:
        return f"bal{self._hash}m"

    @property
    def gateway_ns(self) -> str:
        return f"bal-{self.cluster}-gw"

    @property
    def metadata_ns(self) -> str:
        return f"bal-{self.cluster}-md"

    def machine(self, role: str, index: int) -> str:
        """The container's machine name and hostname: ``<cluster>-master-1``, ``<cluster>-agent-3``."""
        return f"{self.cluster}-{role}-{index}"

    @property
    def machine_pattern(self) -> re.Pattern[str]:
        return re.compile(rf"^{re.escape(self.cluster)}-(master|agent)-(\d+)$")

    @staticmethod
    def cgroup(machine: str) -> str:
        """The container's own cgroup folder name (in every hierarchy)."""
        return f"bal-{machine}"


@dataclass
class NodeRecord:
    """One instance of the local cloud: a container with a fixed address and identity."""

    name: str
    role: str  #: master or agent
    index: int
    ip: str
    uuid: str
    created_at: float
    #: what a master was made from (``master_rollout``): the image and the digest of the user-data the metadata
    #: service serves it, kept while the instance lives as OTC keeps a server's; "" / None: not known (agents,
    #: or a master from before the record)
    image: str = ""
    user_data_sha256: str | None = None


@dataclass
class CloudState:
    cluster: str
    subnet: str
    image: str  #: the node image (rootfs) every instance boots from: fixed at ``up``, like an AS configuration
    image_digest: str
    secret: str = field(default="", repr=False)  #: the cluster secret (ZooKeeper ACL), in every user-data
    #: the operator credential (ZooKeeper ACLs and run-time config), never in user-data; "" before the split
    operator_secret: str = field(default="", repr=False)
    dashboard_user: str = "admin"
    dashboard_password: str = field(default="", repr=False)  #: made at up; only its hash goes to the master
    dashboard_password_hash: str = field(default="", repr=False)
    desired: int = 0
    metadata_pid: int | None = None
    #: the local AS service (``as_service``): the operator's AK/SK for its API, its process and address
    as_access_key: str = ""
    as_secret_key: str = field(default="", repr=False)
    as_pid: int | None = None
    as_endpoint: str = ""
    nodes: list[NodeRecord] = field(default_factory=list)
    phase: str = "creating"  #: creating → ready; removing while ``down`` runs

    # -- addresses ---------------------------------------------------------------------------------------------
    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.subnet)

    @property
    def prefix(self) -> int:
        return self.network.prefixlen

    @property
    def gateway_ip(self) -> str:
        return str(self.network.network_address + 1)

    @property
    def host_ip(self) -> str:
        """This machine's own address on the bridge: its door to the dashboards and to ZooKeeper."""
        return str(self.network.network_address + 2)

    @property
    def as_url(self) -> str:
        """The local AS service's endpoint (OTC's ``AS`` base URL), reachable from this machine and the nodes."""
        return f"http://{self.host_ip}:{AS_PORT}{AS_PREFIX}"

    @property
    def metadata_subnet_ip(self) -> str:
        return str(self.network.broadcast_address - 1)

    def agent_ip(self, index: int) -> str:
        address = self.network.network_address + AGENT_IP_OFFSET + index - 1
        if address >= self.network.broadcast_address - 1:
            raise InputError(f"subnet {self.subnet} has no address left for agent {index}")
        return str(address)

    # -- nodes -------------------------------------------------------------------------------------------------
    def masters(self) -> list[NodeRecord]:
        return [n for n in self.nodes if n.role == "master"]

    def agents(self) -> list[NodeRecord]:
        return sorted((n for n in self.nodes if n.role == "agent"), key=lambda n: n.index)

    def next_agent_index(self) -> int:
        return max((n.index for n in self.agents()), default=0) + 1

    # -- the file ----------------------------------------------------------------------------------------------
    def to_json(self) -> bytes:
        record = asdict(self)
        record["version"] = STATE_VERSION
        return (json.dumps(record, indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, raw: bytes, path: Path) -> CloudState:
        try:
            data = json.loads(raw)
            if data.pop("version", None) != STATE_VERSION:
                raise ValueError("version")
            nodes = [NodeRecord(**n) for n in data.pop("nodes")]
            return cls(nodes=nodes, **data)
        except (ValueError, TypeError, KeyError, AttributeError):
            raise InputError(f"{path}: not a local-cloud state file of this version (restore it; down removes "
                             "the cluster all the same, finding its parts by their names)") from None


@dataclass(frozen=True)
class Paths:
    """The cluster's folder on this machine: state, metadata answers, one folder per instance."""

    root: Path

    @classmethod
    def of(cls, cluster: str) -> Paths:
        return cls(state_root() / cluster)

    @property
    def state_file(self) -> Path:
        return self.root / "cloud.json"

    @property
    def metadata_dir(self) -> Path:
        return self.root / "metadata"

    @property
    def metadata_log(self) -> Path:
        return self.root / "metadata-service.log"

    @property
    def as_state_file(self) -> Path:
        return self.root / "as.json"

    @property
    def as_log(self) -> Path:
        return self.root / "as-service.log"

    @property
    def nodes_dir(self) -> Path:
        return self.root / "nodes"

    def node_dir(self, name: str) -> Path:
        return self.nodes_dir / name

    def node_dirs(self) -> Iterator[Path]:
        if self.nodes_dir.is_dir():
            yield from sorted(p for p in self.nodes_dir.iterdir() if p.is_dir())

    @contextlib.contextmanager
    def locked(self, *, remove: bool = False) -> Iterator[None]:
        """One command at a time per cluster: ``up``, ``scale`` and ``down`` change the same instances and state.

        The lock file lives beside the cluster's folder (``down`` removes the folder while holding it, and with
        ``remove`` the lock file too, so a removed cluster leaves nothing). A lock taken on a file that was
        removed meanwhile is let go and taken again on the new file. The kernel drops the lock when its holder
        dies, so a killed ``provision-min`` never blocks the next one.
        """
        lock = self.root.with_name(f".{self.root.name}.lock")
        lock.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        while True:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise InputError(f"another provision-min is working on cluster {self.root.name} (lock {lock}); "
                                 "wait for it to finish") from None
            try:
                current = os.stat(lock).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                current = False
            if current:
                break
            os.close(fd)
        try:
            yield
            if remove:
                lock.unlink(missing_ok=True)
        finally:
            os.close(fd)

    def load(self) -> CloudState | None:
        """The state; its agents (and desired count) are the local AS service's (``as.json``), read as they
        are now: the service owns the group, ``provision-min`` only reads it."""
        raw = read_private(self.state_file)
        if raw is None:
            return None
        state = CloudState.from_json(raw, self.state_file)
        try:
            group = AsState.load(self.as_state_file)
        except (ValueError, TypeError, KeyError):
            raise InputError(f"{self.as_state_file}: not the local AS service's state (down removes the cluster "
                             "all the same)") from None
        if group.group is not None:
            state.nodes = state.masters() + [
                NodeRecord(name=i.name, role="agent", index=i.index, ip=i.ip, uuid=i.id, created_at=i.created_at)
                for i in group.instances]
            state.desired = group.group.desired
        return state

    def save(self, state: CloudState) -> None:
        """The state without the agents: those are the AS service's to write."""
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        own = replace(state, nodes=state.masters()) if self.as_state_file.exists() else state
        write_private(self.state_file, own.to_json())
