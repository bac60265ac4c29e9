"""The local cloud's subnet: a bridge, a gateway namespace and a metadata namespace, all of the cluster's own.

* the bridge carries one address of this machine (``.2``), the door to the dashboards and to ZooKeeper;
* ``bal-<cluster>-gw`` holds the subnet's gateway (``.1``): a namespace does not forward, so nothing the
  nodes send leaves the subnet, whatever this machine's own forwarding settings are;
* ``bal-<cluster>-md`` holds 169.254.169.254 (and ``.254``): the nodes reach the metadata service through an
  on-link route, exactly as on OTC, and 169.254.169.254 never appears on an interface of this machine.

Every step checks first, so ``up`` after an interrupted ``up`` completes the network, and ``destroy`` removes
whatever part exists. ``ip`` is the only tool used: it is what operators inspect the result with.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from provision_min.errors import ProvisionError
from provision_min.local.layout import METADATA_IP, CloudState, Names

NETNS_DIR = Path("/run/netns")


class NetworkError(ProvisionError):
    """An ``ip`` command failed: the command and ``ip``'s own message."""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc


def link_exists(name: str) -> bool:
    return ip("link", "show", "dev", name, check=False).returncode == 0


def netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def host_ipv4_networks() -> list[ipaddress.IPv4Interface]:
    """Every IPv4 address (with its prefix) on an interface of this machine's network namespace."""
    out = ip("-4", "-o", "addr", "show").stdout
    return [ipaddress.IPv4Interface(line.split()[3]) for line in out.splitlines() if len(line.split()) > 3]


def choose_subnet(taken: Sequence[ipaddress.IPv4Network], pool: ipaddress.IPv4Network,
                  host: Sequence[ipaddress.IPv4Interface]) -> ipaddress.IPv4Network | None:
    """The first /24 of ``pool`` that overlaps neither an address of this machine nor ``taken`` subnets."""
    for candidate in pool.subnets(new_prefix=24):
        if any(i.network.overlaps(candidate) for i in host) or any(t.overlaps(candidate) for t in taken):
            continue
        return candidate
    return None


def namespace_pids(name: str) -> list[int]:
    out = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True, timeout=30, check=False)
    return [int(p) for p in out.stdout.split() if p.isdigit()]


def create(state: CloudState) -> None:
    """The bridge (with this machine's address), the gateway and metadata namespaces; missing parts only."""
    names = Names(state.cluster)
    if not link_exists(names.bridge):
        ip("link", "add", names.bridge, "type", "bridge")
        ip("link", "set", names.bridge, "addrgenmode", "none")  # no IPv6 link-local address either
    host = f"{state.host_ip}/{state.prefix}"
    if host not in ip("-4", "-o", "addr", "show", "dev", names.bridge).stdout:
        ip("addr", "add", host, "dev", names.bridge)
    ip("link", "set", names.bridge, "up")
    _namespace(names.gateway_ns, names.gateway_veth, names.bridge, [f"{state.gateway_ip}/{state.prefix}"])
    _namespace(names.metadata_ns, names.metadata_veth, names.bridge,
               [f"{state.metadata_subnet_ip}/{state.prefix}", f"{METADATA_IP}/32"])


def _namespace(ns: str, veth: str, bridge: str, addresses: Sequence[str]) -> None:
    if not netns_exists(ns):
        ip("netns", "add", ns)
    ip("-n", ns, "link", "set", "lo", "up")
    if not link_exists(veth):
        ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
    ip("link", "set", veth, "addrgenmode", "none")
    ip("link", "set", veth, "master", bridge)
    ip("link", "set", veth, "up")
    present = ip("-n", ns, "-4", "-o", "addr", "show", "dev", "eth0").stdout
    for address in addresses:
        if f" {address} " not in f" {present} ":
            ip("-n", ns, "addr", "add", address, "dev", "eth0")
    ip("-n", ns, "link", "set", "eth0", "up")


def existing(cluster: str) -> list[str]:
    """The cluster's namespaces and links that exist now: what ``destroy`` would remove."""
    names = Names(cluster)
    return ([f"netns {ns}" for ns in (names.metadata_ns, names.gateway_ns) if netns_exists(ns)]
            + [f"link {link}" for link in (names.metadata_veth, names.gateway_veth, names.bridge) if link_exists(link)])


def destroy(cluster: str, timeout: float = 10.0) -> list[str]:
    """Remove the namespaces (killing what still runs in them), the veths and the bridge. What was removed."""
    names = Names(cluster)
    removed: list[str] = []
    for ns in (names.metadata_ns, names.gateway_ns):
        if not netns_exists(ns):
            continue
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in namespace_pids(ns):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + timeout / 2
            while namespace_pids(ns) and time.monotonic() < deadline:
                time.sleep(0.05)
        ip("netns", "del", ns)
        removed.append(f"netns {ns}")
    for link in (names.metadata_veth, names.gateway_veth, names.bridge):
        if link_exists(link):
            result = ip("link", "del", link, check=False)
            if result.returncode != 0 and link_exists(link):
                raise NetworkError(f"ip link del {link}: {result.stderr.strip()}")
            removed.append(f"link {link}")
    return removed


def networkd_text(state: CloudState, address: str) -> str:
    """A node's ``/etc/systemd/network/10-host0.network``: its address, the gateway, the metadata route."""
    return (
        "# the local cloud's network for this instance: written by provision-min\n"
        "[Match]\nName=host0\n\n"
        f"[Network]\nAddress={address}/{state.prefix}\nGateway={state.gateway_ip}\n"
        "LinkLocalAddressing=no\nIPv6AcceptRA=no\n\n"
        "# the metadata service: on-link, answered by the metadata namespace on the bridge\n"
        f"[Route]\nDestination={METADATA_IP}/32\n"
    )
