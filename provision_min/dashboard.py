"""Who logs in to the masters' dashboards, the same way on every cloud.

The cluster file may name the user and give a password hash (``dashboard: {user, password_hash}``, checked
with the agent's own schema code). When it gives no hash, ``up`` generates a password, keeps it in the
cluster's 0600 state file and hands the masters only its hash: a user-data document is readable by anyone
who can read the instance's metadata, a hash is all nginx needs. The password is never printed: ``up`` and
``status`` say where to read it (the state file's mode is its access control; a terminal's scrollback and a
CI log are not).
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bootstrap_agent.errors import InvalidInput
from bootstrap_agent.schema.dashboard import parse_dashboard
from provision_min.errors import InputError, ProvisionError

DEFAULT_USER = "admin"
CLUSTER_FILE_KEYS = ("auth", "user", "password_hash")  # the TLS pair is provision-min's own (dashboard_tls)
PASSWORD_KEY = "dashboard_password"  #: the state file's key that ``up`` and ``status`` point to


def check_section(value: Any) -> dict[str, Any] | None:
    """The cluster file's ``dashboard`` section, checked as the masters will check it; None when absent."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InputError("dashboard: expected a mapping with user and password_hash")
    for key in value:
        if key not in CLUSTER_FILE_KEYS:
            raise InputError(f"dashboard.{key}: unknown key (known: {', '.join(CLUSTER_FILE_KEYS)})")
    try:
        parse_dashboard(value)
    except InvalidInput as exc:
        raise InputError(f"{exc.path}: {exc.message}") from None
    return dict(value)


def needs_password(section: Mapping[str, Any] | None) -> bool:
    """True when provision-min must make the password: auth is on and the cluster file gives no hash."""
    section = section or {}
    return section.get("auth", True) is not False and "password_hash" not in section


def user_of(section: Mapping[str, Any] | None) -> str:
    return str((section or {}).get("user", DEFAULT_USER))


def generate() -> tuple[str, str]:
    """A new password and its hash."""
    password = secrets.token_urlsafe(18)
    return password, hash_password(password)


def hash_password(password: str) -> str:
    """A SHA-512 crypt hash (``$6$``) nginx's basic auth accepts; made by openssl, the password on stdin."""
    try:
        result = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=password, capture_output=True,
                                text=True, timeout=30, check=False)
    except FileNotFoundError:
        raise InputError("dashboard: openssl is needed to hash the generated dashboard password (install it, or "
                         "set dashboard.password_hash in the cluster file)") from None
    if result.returncode != 0 or not result.stdout.startswith("$6$"):
        raise ProvisionError(f"openssl passwd failed: {result.stderr.strip()}")
    return result.stdout.strip()


def master_section(section: Mapping[str, Any] | None, generated_hash: str | None) -> dict[str, Any] | None:
    """The masters' ``dashboard`` user-data: the cluster file's section, with the generated hash when it has none."""
    merged = dict(section or {})
    if needs_password(merged) and generated_hash:
        merged.update(user=user_of(section), password_hash=generated_hash)
    return merged or None


@dataclass(frozen=True)
class Login:
    """How a person logs in: for the output of ``up`` and ``status`` (never the password itself)."""

    user: str
    auth: bool
    password_file: Path | None  # the state file holding the generated password; None: the cluster file's hash
    locked: bool = False  # auth on, but no hash anywhere (a state file older than generated passwords)

    def hint(self) -> str:
        if not self.auth:
            return "no login (dashboard.auth: false)"
        if self.locked:
            return ("locked: no password hash (set dashboard.password_hash in the cluster file; the masters take "
                    "it when they are created)")
        if self.password_file is None:
            return f"user {self.user}, the password whose hash is dashboard.password_hash in the cluster file"
        return f"user {self.user}, password: {PASSWORD_KEY} in {self.password_file}"

    def as_json(self) -> dict[str, Any]:
        return {"user": self.user, "auth": self.auth, "locked": self.locked, "hint": self.hint(),
                "password_file": str(self.password_file) if self.password_file else None,
                "password_key": PASSWORD_KEY if self.password_file else None}


def login(section: Mapping[str, Any] | None, state_file: Path, has_generated: bool) -> Login:
    auth = (section or {}).get("auth", True) is not False
    generated = needs_password(section) and has_generated
    return Login(user_of(section), auth, state_file if generated else None,
                 locked=auth and needs_password(section) and not has_generated)
