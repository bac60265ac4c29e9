"""What the local metadata service answers for each instance, and the service's own process.

The answers are files below the cluster's state folder (0600), one folder per instance address; the service
(``provision_min.local.metadata_service``) runs in the cluster's metadata namespace at 169.254.169.254.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sys
import time
from typing import Any

from bootstrap_agent.otc_signing import KnownKey, format_expiry, key_from_securitykey
from bootstrap_agent.zk import acls
from provision_min.config import ClusterConfig
from provision_min.dashboard import hash_password as hash_password  # re-exported: one hash for every cloud
from provision_min.dashboard import master_section
from provision_min.files import write_private
from provision_min.local import machine
from provision_min.local.as_state import new_access_key
from provision_min.local.background import start_and_wait
from provision_min.local.layout import METADATA_IP, CloudState, Names, NodeRecord, Paths
from provision_min.local.subnets import local_config

METADATA_MODULE = "provision_min.local.metadata_service"
SECURITY_KEY, PREVIOUS_KEY = "securitykey", "securitykey.previous"
KEY_TTL = 3600.0  #: an agency's temporary keys are valid one hour ...
RENEW_BEFORE = 600.0  #: ... and renewed 10 minutes before they expire


def user_data(config: ClusterConfig, state: CloudState, role: str) -> dict[str, Any]:
    """The instance's user-data, validated; the dashboard's password hash and the operator credential's digest id
    (its tree starts split) only where the dashboard and the tree's creator are: on the masters."""
    master = role == "master"
    dashboard = master_section(config.dashboard, state.dashboard_password_hash) if master else None
    operator = acls.operator_id(state.operator_secret) if master and state.operator_secret else None
    # Agents poll the AS service's lifecycle hook; the masters' scaler (autoscaling enabled) acts on its group.
    as_endpoint = state.as_url
    return local_config(config, state.network).user_data(role, state.secret, dashboard, operator,
                                                         as_endpoint=as_endpoint)


def meta_data(config: ClusterConfig, node: NodeRecord) -> dict[str, Any]:
    """``meta_data.json`` as OTC documents it: uuid, availability_zone, hostname (.novalocal), name, ..."""
    return {"uuid": node.uuid, "name": node.name, "hostname": f"{node.name}.novalocal",
            "availability_zone": config.availability_zone, "project_id": "local", "launch_index": 0,
            "meta": {"cluster": config.cluster, "role": node.role}}


def publish(paths: Paths, config: ClusterConfig, state: CloudState, node: NodeRecord) -> dict[str, Any]:
    """The metadata service's answers for ``node``, by its address (files replaced atomically, 0600); returns
    the user-data served."""
    document = user_data(config, state, node.role)
    publish_answers(paths, node.ip, json.dumps(document, indent=2).encode(), meta_data(config, node))
    return document


def publish_answers(paths: Paths, ip: str, user_data_bytes: bytes, meta: dict[str, Any],
                    key_ttl: float = KEY_TTL) -> None:
    """User-data, ``meta_data.json`` and (the first time) the agency's temporary keys of the instance at ``ip``."""
    folder = paths.metadata_dir / ip
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_private(folder / "user_data", user_data_bytes)
    write_private(folder / "meta_data.json", json.dumps(meta).encode())
    if not (folder / SECURITY_KEY).exists():
        issue_key(paths, ip, key_ttl)


# -- the agency's temporary keys (``/openstack/latest/securitykey``) -------------------------------------------
def issue_key(paths: Paths, ip: str, ttl: float = KEY_TTL, now: float | None = None) -> None:
    """Fresh temporary keys for the instance at ``ip`` in the documented shape; the current ones (if any) stay
    valid until they expire, as ``securitykey.previous`` (not served): a node may still be using them."""
    folder = paths.metadata_dir / ip
    current = folder / SECURITY_KEY
    if current.exists():
        write_private(folder / PREVIOUS_KEY, current.read_bytes())
    access, secret = new_access_key()
    expires = (time.time() if now is None else now) + ttl
    document = {"credential": {"access": access, "secret": secret, "securitytoken": secrets.token_urlsafe(96),
                               "expires_at": format_expiry(expires)}}
    write_private(current, json.dumps(document).encode())


def renew_keys(paths: Paths, ttl: float = KEY_TTL, now: float | None = None) -> list[str]:
    """Renew every instance's keys that expire within ``RENEW_BEFORE`` (or ``ttl / 6`` when shorter), as OTC
    renews an agency's keys 10 minutes before they expire; the addresses renewed."""
    clock = time.time() if now is None else now
    renewed = []
    for ip, known in _key_files(paths, (SECURITY_KEY,)):
        if known.expires_at is not None and known.expires_at - clock < min(RENEW_BEFORE, ttl / 6):
            issue_key(paths, ip, ttl, clock)
            renewed.append(ip)
    return renewed


def node_keys(paths: Paths) -> dict[str, KnownKey]:
    """Every temporary key handed out and not yet dropped, by access key."""
    return {known.key.access: known for _ip, known in _key_files(paths, (SECURITY_KEY, PREVIOUS_KEY))}


def _key_files(paths: Paths, names: tuple[str, ...]) -> list[tuple[str, KnownKey]]:
    found = []
    if paths.metadata_dir.is_dir():
        for folder in paths.metadata_dir.iterdir():
            for name in names:
                with contextlib.suppress(OSError, ValueError):
                    found.append((folder.name, key_from_securitykey(json.loads((folder / name).read_bytes()))))
    return found


def unpublish(paths: Paths, node: NodeRecord) -> None:
    machine.remove_folder(paths.metadata_dir / node.ip)


def metadata_running(paths: Paths, state: CloudState) -> bool:
    pid = state.metadata_pid
    if pid is None:
        return False
    cmdline = machine.cmdline(pid)
    return METADATA_MODULE in cmdline and str(paths.metadata_dir) in cmdline


def start_metadata(paths: Paths, state: CloudState, timeout: float = 15.0) -> None:
    if metadata_running(paths, state):
        return
    paths.metadata_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    argv = ["ip", "netns", "exec", Names(state.cluster).metadata_ns, sys.executable, "-m", METADATA_MODULE,
            "--bind", METADATA_IP, "--port", "80", "--dir", str(paths.metadata_dir)]

    def record(pid: int) -> None:
        state.metadata_pid = pid  # ip netns exec execs the server: same pid
        paths.save(state)

    start_and_wait(argv, paths.metadata_log, "metadata service", timeout, record)


def stop_metadata(paths: Paths, state: CloudState) -> bool:
    if not metadata_running(paths, state):
        return False
    assert state.metadata_pid is not None
    with contextlib.suppress(ProcessLookupError):
        os.kill(state.metadata_pid, 15)
    deadline = time.monotonic() + 5
    while metadata_running(paths, state) and machine.alive(state.metadata_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return True
