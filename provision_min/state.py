"""The cluster's own state: its secret, generated once, and the master addresses it was created with.

Where: beside the cluster file, named ``<cluster>.state.json`` (``--state PATH`` overrides), mode 0600,
written atomically. Not in the cluster file, because that is the file users edit, copy and commit; and not in
a per-user folder, because the next ``up`` or ``scale`` may run from another account or machine that has the
cluster file's folder (a checkout, a shared admin folder) — a second secret would silently split the cluster
(new agents could not read the masters' ZooKeeper tree). Keep it out of version control like any key file.

The masters are remembered because they are the ZooKeeper ensemble baked into every node's user-data:
changing ``masters`` or ``subnet_cidr`` under a running cluster would hand new nodes a different ensemble, so
``up`` refuses that instead of half-doing it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provision_min import dashboard, dashboard_tls
from provision_min.config import ClusterConfig
from provision_min.errors import InputError
from provision_min.files import read_private, write_private

STATE_VERSION = 1


@dataclass(frozen=True)
class ClusterState:
    cluster: str
    secret: str = field(repr=False)
    masters: tuple[str, ...]
    # The dashboard's TLS pair (certificate, key) the masters get and provision-min pins (``dashboard_tls``);
    # None in a state file written before it existed.
    dashboard_tls: tuple[str, str] | None = field(default=None, repr=False)
    # The dashboard login made at the first up: the masters get the hash, `up` and `status` log in with the password.
    dashboard_user: str = "admin"
    dashboard_password: str = field(default="", repr=False)
    dashboard_password_hash: str = field(default="", repr=False)
    # The operator credential (ZooKeeper digest ``bootstrap-operator``): the only one that may change the run-time
    # config and the ACLs; never in user-data. "" in a state file written before it (``migrate-credentials``).
    operator_secret: str = field(default="", repr=False)


def default_path(config: ClusterConfig) -> Path:
    """``<folder of the cluster file>/<cluster>.state.json``."""
    return config.path.parent / f"{config.cluster}.state.json"


def load(path: Path, config: ClusterConfig) -> ClusterState | None:
    """The state of this cluster, or None when none was written yet; ``InputError`` when it does not fit."""
    raw = read_private(path)
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        state = ClusterState(str(data["cluster"]), str(data["secret"]), tuple(str(ip) for ip in data["masters"]),
                             _tls_pair(data), str(data.get("dashboard_user", "admin")),
                             str(data.get("dashboard_password", "")), str(data.get("dashboard_password_hash", "")),
                             str(data.get("operator_secret", "")))
    except (ValueError, KeyError, TypeError):
        raise InputError(f"{path}: not a provision-min state file (restore it from a backup or remove it)") from None
    if state.cluster != config.cluster:
        raise InputError(f"{path}: belongs to cluster {state.cluster!r}, the cluster file names {config.cluster!r}")
    if state.masters != config.master_ips:
        raise InputError(
            f"{path}: the cluster was created with masters {', '.join(state.masters)}, the cluster file now gives "
            f"{', '.join(config.master_ips)}; the ZooKeeper ensemble of an existing cluster cannot be changed by up "
            "(restore masters/subnet_cidr, or run down first)"
        )
    return state


def create(path: Path, config: ClusterConfig) -> ClusterState:
    """Generate the cluster secret (once) and keep it, with the masters, in a new 0600 file."""
    # The dashboard password only when the cluster file gives no hash of its own (provision_min.dashboard).
    password, password_hash = dashboard.generate() if dashboard.needs_password(config.dashboard) else ("", "")
    state = ClusterState(config.cluster, secrets.token_urlsafe(32), config.master_ips,
                         dashboard_tls.make_pair(config.cluster, config.master_ips),
                         dashboard.user_of(config.dashboard), password, password_hash, secrets.token_urlsafe(32))
    record = {
        "version": STATE_VERSION,
        "cluster": state.cluster,
        "masters": list(state.masters),
        "secret": state.secret,
        "dashboard_tls_certificate": state.dashboard_tls[0] if state.dashboard_tls else None,
        "dashboard_tls_key": state.dashboard_tls[1] if state.dashboard_tls else None,
        "dashboard_user": state.dashboard_user,
        "dashboard_password": state.dashboard_password,
        "dashboard_password_hash": state.dashboard_password_hash,
        "operator_secret": state.operator_secret,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_private(path, (json.dumps(record, indent=2) + "\n").encode("utf-8"))
    return state


def add_operator_secret(path: Path, config: ClusterConfig) -> tuple[ClusterState, bool]:
    """Give an older state file its operator credential (kept as it is when it has one); True when added.
    Everything else in the file stays as it was."""
    state = load(path, config)
    if state is None:
        raise InputError(f"{path}: no state file: the cluster was not created from here (give --state FILE)")
    if state.operator_secret:
        return state, False
    record = json.loads(read_private(path) or b"{}")
    record["operator_secret"] = secrets.token_urlsafe(32)
    write_private(path, (json.dumps(record, indent=2) + "\n").encode("utf-8"))
    return dataclasses.replace(state, operator_secret=record["operator_secret"]), True


def _tls_pair(data: dict[str, Any]) -> tuple[str, str] | None:
    cert, key = data.get("dashboard_tls_certificate"), data.get("dashboard_tls_key")
    if cert is None and key is None:
        return None
    if not isinstance(cert, str) or not isinstance(key, str):
        raise TypeError("dashboard_tls_certificate and dashboard_tls_key come together")
    return cert, key


def remove(path: Path) -> bool:
    """Forget the cluster (after ``down`` removed everything). True when a file was removed."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
        return True
    return False
