"""Credentials the way the OpenStack tools find them: ``--cloud``/``OS_CLOUD`` in clouds.yaml, else ``OS_*``.

Where credentials come from, first match wins:

1. ``--cloud NAME`` (alias ``--os-cloud``) or ``OS_CLOUD``: that cloud from the first ``clouds.yaml`` found in
   ``$OS_CLIENT_CONFIG_FILE``, ``./clouds.yaml``, ``~/.config/openstack/clouds.yaml``,
   ``/etc/openstack/clouds.yaml`` (``.yml`` accepted too);
2. ``OS_*`` variables (``OS_AUTH_URL``, ``OS_USERNAME``, ``OS_PASSWORD``, ``OS_USER_DOMAIN_NAME``/``_ID``,
   ``OS_PROJECT_NAME``/``_ID``, ``OS_PROJECT_DOMAIN_NAME``/``_ID``) when ``OS_AUTH_URL`` is set;
3. the only cloud of a ``clouds.yaml`` that defines exactly one.

Password authentication scoped to the project (by default the project named like the region, OTC's default
project); ``provision_min.token`` issues and caches the token.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from bootstrap_agent import logs
from provision_min.errors import InputError

CLOUDS_FILE_NAMES = ("clouds.yaml", "clouds.yml")
SYSTEM_CONFIG_DIR = Path("/etc/openstack")


@dataclass(frozen=True)
class CloudAuth:
    """What password authentication needs; ``source`` says where it was found (for messages, never secrets)."""

    auth_url: str
    username: str
    password: str = field(repr=False)
    user_domain: tuple[str, str]  # ("name", "OTC-EU-DE-...") or ("id", "...")
    project: tuple[str, str]  # ("name", "eu-de") or ("id", "...")
    project_domain: tuple[str, str] | None
    source: str

    def token_request(self) -> dict[str, Any]:
        """The body of ``POST /v3/auth/tokens``, as documented for OTC IAM."""
        user = {"name": self.username, "password": self.password, "domain": {self.user_domain[0]: self.user_domain[1]}}
        project: dict[str, Any] = {self.project[0]: self.project[1]}
        if self.project[0] == "name" and self.project_domain is not None:
            project["domain"] = {self.project_domain[0]: self.project_domain[1]}
        return {
            "auth": {
                "identity": {"methods": ["password"], "password": {"user": user}},
                "scope": {"project": project},
            }
        }

    def cache_key(self) -> str:
        who = [self.auth_url, self.username, *self.user_domain, *self.project]
        return hashlib.sha256(json.dumps(who).encode()).hexdigest()[:32]


# --- finding credentials ------------------------------------------------------------------------------------


def clouds_yaml_candidates(env: Mapping[str, str], cwd: Path, home: Path, system_dir: Path) -> list[Path]:
    """Where clouds.yaml is looked for, in order (the OpenStack client's order)."""
    found: list[Path] = []
    if env.get("OS_CLIENT_CONFIG_FILE"):
        found.append(Path(env["OS_CLIENT_CONFIG_FILE"]))
    for folder in (cwd, home / ".config" / "openstack", system_dir):
        found.extend(folder / name for name in CLOUDS_FILE_NAMES)
    return found


def load_auth(
    cloud: str | None,
    env: Mapping[str, str],
    *,
    region: str,
    cwd: Path | None = None,
    home: Path | None = None,
    system_dir: Path = SYSTEM_CONFIG_DIR,
) -> CloudAuth:
    """The credentials to use; ``InputError`` saying what is missing and where it was looked for."""
    cwd = cwd if cwd is not None else Path.cwd()
    home = home if home is not None else Path(env.get("HOME") or Path.home())
    candidates = clouds_yaml_candidates(env, cwd, home, system_dir)
    clouds_file = next((path for path in candidates if path.is_file()), None)
    name = cloud or env.get("OS_CLOUD") or None
    if name:
        if clouds_file is None:
            raise InputError(
                f"cloud {name!r} requested but no clouds.yaml found (looked in: {', '.join(map(str, candidates))})"
            )
        clouds = _read_clouds(clouds_file)
        if name not in clouds:
            known = ", ".join(sorted(clouds)) or "none"
            raise InputError(f"{clouds_file}: no cloud named {name!r} (defined: {known})")
        return _from_cloud_entry(clouds[name], clouds_file, name, env, region)
    if env.get("OS_AUTH_URL"):
        return _from_env(env, region)
    if clouds_file is not None:
        clouds = _read_clouds(clouds_file)
        if len(clouds) == 1:
            (only,) = clouds
            return _from_cloud_entry(clouds[only], clouds_file, only, env, region)
        raise InputError(
            f"{clouds_file} defines {len(clouds)} clouds ({', '.join(sorted(clouds))}): "
            "choose one with --cloud or OS_CLOUD"
        )
    raise InputError(
        "no OTC credentials: give --cloud NAME (or OS_CLOUD) with a clouds.yaml in "
        f"{', '.join(str(p) for p in candidates if p.name == 'clouds.yaml')}, or set OS_AUTH_URL, OS_USERNAME, "
        "OS_PASSWORD and OS_USER_DOMAIN_NAME"
    )


def _read_clouds(path: Path) -> dict[str, Any]:
    try:
        document = yaml.safe_load(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InputError(f"{path}: cannot read: {str(exc).splitlines()[0]}") from None
    clouds = document.get("clouds") if isinstance(document, dict) else None
    if not isinstance(clouds, dict):
        raise InputError(f"{path}: expected a 'clouds:' mapping")
    return clouds


def _from_cloud_entry(entry: Any, path: Path, name: str, env: Mapping[str, str], region: str) -> CloudAuth:
    where = f"{path} (cloud {name})"
    if not isinstance(entry, dict) or not isinstance(entry.get("auth"), dict):
        raise InputError(f"{where}: expected an 'auth:' mapping")
    auth_type = entry.get("auth_type", "password")
    if auth_type not in ("password", "v3password"):
        raise InputError(f"{where}: auth_type {auth_type!r} is not supported, only password")
    auth: dict[str, Any] = entry["auth"]

    def get(*keys: str) -> str | None:
        for key in keys:
            value = auth.get(key)
            if value not in (None, ""):
                return str(value)
        return None

    # Like the OpenStack client: the password may stay out of the file.
    password = get("password") or env.get("OS_PASSWORD")
    return _assemble(
        where,
        auth_url=get("auth_url"),
        username=get("username", "user_name"),
        password=password,
        user_domain_name=get("user_domain_name", "domain_name"),
        user_domain_id=get("user_domain_id", "domain_id"),
        project_name=get("project_name", "tenant_name"),
        project_id=get("project_id", "tenant_id"),
        project_domain_name=get("project_domain_name"),
        project_domain_id=get("project_domain_id"),
        region=region,
        field_names={"auth_url": "auth.auth_url", "username": "auth.username", "password": "auth.password",
                     "domain": "auth.user_domain_name"},
    )


def _from_env(env: Mapping[str, str], region: str) -> CloudAuth:
    def get(*keys: str) -> str | None:
        for key in keys:
            if env.get(key):
                return env[key]
        return None

    return _assemble(
        "OS_* variables",
        auth_url=get("OS_AUTH_URL"),
        username=get("OS_USERNAME", "OS_USER_NAME"),
        password=get("OS_PASSWORD"),
        user_domain_name=get("OS_USER_DOMAIN_NAME", "OS_DOMAIN_NAME"),
        user_domain_id=get("OS_USER_DOMAIN_ID", "OS_DOMAIN_ID"),
        project_name=get("OS_PROJECT_NAME", "OS_TENANT_NAME"),
        project_id=get("OS_PROJECT_ID", "OS_TENANT_ID"),
        project_domain_name=get("OS_PROJECT_DOMAIN_NAME"),
        project_domain_id=get("OS_PROJECT_DOMAIN_ID"),
        region=region,
        field_names={"auth_url": "OS_AUTH_URL", "username": "OS_USERNAME", "password": "OS_PASSWORD",
                     "domain": "OS_USER_DOMAIN_NAME"},
    )


def _assemble(
    where: str,
    *,
    auth_url: str | None,
    username: str | None,
    password: str | None,
    user_domain_name: str | None,
    user_domain_id: str | None,
    project_name: str | None,
    project_id: str | None,
    project_domain_name: str | None,
    project_domain_id: str | None,
    region: str,
    field_names: Mapping[str, str],
) -> CloudAuth:
    for key, value in (("auth_url", auth_url), ("username", username), ("password", password)):
        if not value:
            raise InputError(f"{where}: {field_names[key]} is missing")
    if not (user_domain_name or user_domain_id):
        raise InputError(
            f"{where}: {field_names['domain']} (the OTC domain, e.g. OTC-EU-DE-00000000001000000xxx) is missing"
        )
    assert auth_url and username and password  # for mypy: checked above
    parts = urlsplit(auth_url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InputError(f"{where}: {field_names['auth_url']} {auth_url!r} is not an http(s) URL")
    url = auth_url.rstrip("/")
    if parts.port in (443, 80) and (parts.scheme, parts.port) in (("https", 443), ("http", 80)):
        url = url.replace(f"{parts.hostname}:{parts.port}", str(parts.hostname), 1)  # the same URL, as IAM names it
    if not url.endswith("/v3"):
        url += "/v3"
    project = ("id", project_id) if project_id else ("name", project_name or region)
    project_domain: tuple[str, str] | None = None
    if project_domain_id:
        project_domain = ("id", project_domain_id)
    elif project_domain_name:
        project_domain = ("name", project_domain_name)
    logs.register_secrets(password, source="os-password")
    return CloudAuth(
        auth_url=url,
        username=username,
        password=password,
        user_domain=("id", user_domain_id) if user_domain_id else ("name", str(user_domain_name)),
        project=project,
        project_domain=project_domain,
        source=where,
    )


def environment() -> dict[str, str]:
    """The process environment as a plain dict (so tests and callers can pass their own)."""
    return dict(os.environ)
