"""The ``dashboard`` section: who may log in to the master's HTTPS dashboards, and with which TLS pair."""

from __future__ import annotations

import re
from typing import Any

from bootstrap_agent.errors import InvalidInput
from bootstrap_agent.schema.readers import kind, read_bool, read_object, read_string
from bootstrap_agent.schema.settings import DashboardSettings

DASHBOARD_KEYS = frozenset({"auth", "user", "password_hash", "tls_certificate", "tls_key"})
DASHBOARD_USER = re.compile(r"^[A-Za-z0-9._-]{1,32}$")
# Hashes nginx's auth_basic_user_file understands on Debian 12 (its own $apr1$, glibc/libxcrypt crypt(),
# salted SHA). {PLAIN} and unsalted {SHA} are refused: a leaked user-data must not leak the password too.
PASSWORD_HASH = re.compile(
    r"^(\$apr1\$[./0-9A-Za-z]{1,8}\$[./0-9A-Za-z]{22}"
    r"|\$(?:5|6)\$(?:rounds=\d{4,9}\$)?[./0-9A-Za-z]{1,16}\$[./0-9A-Za-z]{43,86}"
    r"|\$2[aby]\$\d{2}\$[./0-9A-Za-z]{53}"
    r"|\$y\$[./0-9A-Za-z]+\$[./0-9A-Za-z]+\$[./0-9A-Za-z]{43}"
    r"|\{SSHA\}[A-Za-z0-9+/=]{28,})$"
)
PEM_TEXT = re.compile(r"^(?:-----BEGIN ([A-Z ]+)-----\n[A-Za-z0-9+/=\n]+-----END \1-----\n)+$")


def parse_dashboard(value: Any) -> DashboardSettings:
    obj = read_object(value, "dashboard", DASHBOARD_KEYS)
    auth = read_bool(obj.get("auth", True), "dashboard.auth")
    user = read_string(obj.get("user", "admin"), "dashboard.user")
    if not DASHBOARD_USER.match(user):
        raise InvalidInput("dashboard.user", "1-32 characters of A-Z, a-z, 0-9, '._-'")
    password_hash = None
    if "password_hash" in obj:
        password_hash = read_string(obj["password_hash"], "dashboard.password_hash")
        if not PASSWORD_HASH.match(password_hash):
            raise InvalidInput("dashboard.password_hash", "not a password hash nginx accepts "
                               "($apr1$ from 'openssl passwd -apr1', $5$/$6$ from 'openssl passwd -6', bcrypt, "
                               "yescrypt or {SSHA}); plain text and {SHA} are refused")
    certificate = _pem(obj["tls_certificate"], "dashboard.tls_certificate", "CERTIFICATE") \
        if "tls_certificate" in obj else None
    key = _pem(obj["tls_key"], "dashboard.tls_key", "PRIVATE KEY") if "tls_key" in obj else None
    if (certificate is None) != (key is None):
        missing = "dashboard.tls_key" if key is None else "dashboard.tls_certificate"
        raise InvalidInput(missing, "tls_certificate and tls_key come together")
    return DashboardSettings(auth, user, password_hash, certificate, key)


def _pem(value: Any, path: str, pem_kind: str) -> str:
    """PEM text: the one place where user-data strings may hold newlines (and nothing else unusual)."""
    if not isinstance(value, str):
        raise InvalidInput(path, f"expected a PEM string, got {kind(value)}")
    text = value.replace("\r\n", "\n").strip() + "\n"
    if not PEM_TEXT.match(text):
        raise InvalidInput(path, "not PEM: only -----BEGIN ...----- / -----END ...----- blocks of base64")
    first = text[len("-----BEGIN "):text.index("-----\n")]
    if not first.endswith(pem_kind):
        raise InvalidInput(path, f"expected a {pem_kind} block, got {first}")
    return text
