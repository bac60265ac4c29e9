"""Metadata concealment: only root (and nginx, the cache's own worker) may reach the node's secrets.

The user-data carries the cluster secret and the S3 keys; ``meta_data.json`` and the agency's temporary keys
(``/openstack/latest/securitykey``) are on the same metadata service. Any other uid on the node (a Mesos task,
a Spark executor, uid 65534) and any Docker container must be refused, as GKE's metadata concealment and
AWS's IMDS hop limit refuse pods and containers. The tool is one nftables table of our own, loaded at boot by
``bootstrap-agent-conceal.service`` before Docker, Mesos and the agent (image/install-node.sh installs both):

* ``output``: to 169.254.169.254 (every port) only from sockets owned by root or the nginx user; to the
  loopback cache (127.0.0.1:80) only from root's. A process in a host-network container is a process of the
  node: the owner match covers it.
* ``forward``: nothing is forwarded to 169.254.169.254, so no bridge-network container reaches it (Docker's
  own chains cannot accept what this chain drops: a drop in any base chain of a hook is final).

Refusals are ``reject`` (TCP reset, ICMP admin-prohibited otherwise), so a refused client fails at once
instead of timing out. A table of its own survives Docker rewriting its iptables chains.

The agent checks it by behaviour, not by reading rules (it has no CAP_NET_ADMIN): on a node whose image
installed the rules (``RULESET_PATH`` exists below the layout's root) and when it runs as root, it connects
as uid 65534 to both places; a connection that succeeds makes the node ``degraded`` with the reason.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence

from bootstrap_agent.layout import Layout
from bootstrap_agent.metadata_cache import METADATA_UPSTREAM

#: The nftables table the image loads (its own family/name: nothing else in the ruleset is touched).
TABLE = "bootstrap_agent_conceal"
#: Where the image installs the ruleset (``nft -f``); its presence says "this node must be concealed".
RULESET_PATH = "/etc/bootstrap-agent/conceal.nft"
#: The unit that loads it, named in the degraded reason.
UNIT = "bootstrap-agent-conceal.service"
#: The local cache's listener (bootstrap_agent.metadata_cache's default ``listen``).
CACHE_ADDRESS = "127.0.0.1:80"
#: Who the agent pretends to be when it checks: the uid Mesos tasks and Spark executors run as.
PROBE_UID = 65534
#: The probe's interpreter: the system's, which every uid may run (a venv or pyenv below /root may not be).
SYSTEM_PYTHON = "/usr/bin/python3"

# The child that tries to connect: no imports of ours (it runs as nobody, from whatever cwd), one line per
# target that accepted.
_PROBE = (
    "import socket, sys\n"
    "for target in sys.argv[2:]:\n"
    "    host, _, port = target.rpartition(':')\n"
    "    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"
    "    s.settimeout(float(sys.argv[1]))\n"
    "    try:\n"
    "        s.connect((host, int(port)))\n"
    "        print(target)\n"
    "    except OSError:\n"
    "        pass\n"
    "    finally:\n"
    "        s.close()\n"
)


def render_conceal_ruleset(
    *, metadata: str = METADATA_UPSTREAM, cache: str = CACHE_ADDRESS,
    metadata_users: Sequence[str] = ("root", "www-data"),
) -> str:
    """The ``nft -f`` text: idempotent (declare, delete, define), so loading it twice leaves one table."""
    cache_host, _, cache_port = cache.rpartition(":")
    users = ", ".join(metadata_users)
    return (
        "# bootstrap-agent metadata concealment (bootstrap_agent/conceal.py): user-data, meta_data.json and the\n"
        "# agency's keys for root only; loaded by bootstrap-agent-conceal.service before docker and mesos-agent.\n"
        f"table inet {TABLE}\n"
        f"delete table inet {TABLE}\n"
        f"table inet {TABLE} {{\n"
        "    chain output {\n"
        "        type filter hook output priority filter - 10; policy accept;\n"
        f"        ip daddr {metadata} meta skuid != {{ {users} }} jump refuse\n"
        f"        ip daddr {cache_host} tcp dport {cache_port} meta skuid != 0 jump refuse\n"
        "    }\n"
        "    chain forward {\n"
        "        type filter hook forward priority filter - 10; policy accept;\n"
        f"        ip daddr {metadata} jump refuse\n"
        "    }\n"
        "    chain refuse {\n"
        "        meta l4proto tcp reject with tcp reset\n"
        "        reject with icmpx type admin-prohibited\n"
        "    }\n"
        "}\n"
    )


def _interpreter() -> str:
    return SYSTEM_PYTHON if os.path.exists(SYSTEM_PYTHON) else sys.executable


def reachable_as(uid: int, targets: Sequence[str], timeout: float = 1.0) -> list[str] | None:
    """The ``host:port`` targets that a process of ``uid`` (no groups) can connect to; None when this process
    cannot become ``uid`` (not root) and so cannot tell."""
    try:
        done = subprocess.run(
            [_interpreter(), "-I", "-S", "-c", _PROBE, str(timeout), *targets],
            user=uid, group=uid, extra_groups=[], cwd="/", capture_output=True, text=True,
            timeout=timeout * len(targets) + 10, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return [line for line in done.stdout.split() if line in targets]


def concealment_problem(layout: Layout, *, metadata: str = METADATA_UPSTREAM, cache: str = CACHE_ADDRESS) -> str:
    """The degraded reason when this node should be concealed and is not; "" when it is (or is not ours to
    check: no ruleset installed below the layout's root, or not running as root)."""
    if not os.path.exists(layout.path(RULESET_PATH)) or os.geteuid() != 0:
        return ""
    open_targets = reachable_as(PROBE_UID, [cache, f"{metadata}:80"])
    if not open_targets:
        return ""
    return (f"metadata concealment missing: uid {PROBE_UID} reaches {', '.join(open_targets)} "
            f"(nft table inet {TABLE}; systemctl restart {UNIT})")
