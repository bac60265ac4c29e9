"""Credentials the way the OpenStack tools find them, and a project-scoped token with its service catalog.

Where credentials come from, first match wins:

1. ``--cloud NAME`` (alias ``--os-cloud``) or ``OS_CLOUD``: that cloud from the first ``clouds.yaml`` found in
   ``$OS_CLIENT_CONFIG_FILE``, ``./clouds.yaml``, ``~/.config/openstack/clouds.yaml``,
   ``/etc/openstack/clouds.yaml`` (``.yml`` accepted too);
2. ``OS_*`` variables (``OS_AUTH_URL``, ``OS_USERNAME``, ``OS_PASSWORD``, ``OS_USER_DOMAIN_NAME``/``_ID``,
   ``OS_PROJECT_NAME``/``_ID``, ``OS_PROJECT_DOMAIN_NAME``/``_ID``) when ``OS_AUTH_URL`` is set;
3. the only cloud of a ``clouds.yaml`` that defines exactly one.

Password authentication scoped to the project (by default the project named like the region, OTC's default
project). A token is valid for 24 hours and issuing one is slow and rate-limited, so it is kept (mode 0600,
keyed by auth URL, user and project) in ``$XDG_CACHE_HOME/provision-min/`` and reused by later commands
until 10 minutes before it expires. Service endpoints come from the token's catalog; the documented eu-de
style hosts are only the fallback for a service the catalog does not list.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import yaml

from bootstrap_agent import logs
from provision_min.errors import ApiError, InputError, ProvisionError
from provision_min.files import read_private, write_private

CLOUDS_FILE_NAMES = ("clouds.yaml", "clouds.yml")
SYSTEM_CONFIG_DIR = Path("/etc/openstack")
TOKEN_REUSE_MARGIN = dt.timedelta(minutes=10)
HTTP_TIMEOUT = (10.0, 60.0)

# Catalog type -> the path below the host that the documented API calls start from (the project id follows).
SERVICES: dict[str, str] = {"vpc": "/v1", "ecs": "/v1", "as": "/autoscaling-api/v1"}
FALLBACK_HOST = "https://{service}.{region}.otc.t-systems.com"
URL_TEMPLATES = ("$(tenant_id)s", "%(tenant_id)s", "$(project_id)s", "%(project_id)s", "{project_id}", "{tenant_id}")


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


# --- the token and its catalog ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoints:
    """Base URL of each service, ending with the project id; the documented paths are appended to it."""

    vpc: str
    ecs: str
    as_: str

    def base(self, service: str) -> str:
        return {"vpc": self.vpc, "ecs": self.ecs, "as": self.as_}[service]


def fallback_endpoints(region: str, project_id: str) -> Endpoints:
    """The documented hosts (``https://vpc.eu-de.otc.t-systems.com/v1/{project_id}``, ...)."""
    host = FALLBACK_HOST.format
    urls = {svc: host(service=svc, region=region) + path + "/" + project_id for svc, path in SERVICES.items()}
    return Endpoints(vpc=urls["vpc"], ecs=urls["ecs"], as_=urls["as"])


def endpoints_from_catalog(catalog: Any, region: str, project_id: str) -> tuple[Endpoints, list[str]]:
    """Endpoints from the token's catalog; the second value names services that fell back to the table."""
    urls: dict[str, str] = {}
    fallback: list[str] = []
    entries = catalog if isinstance(catalog, list) else []
    for service, version_path in SERVICES.items():
        url = _catalog_url(entries, service, region)
        if url is None:
            fallback.append(service)
            urls[service] = FALLBACK_HOST.format(service=service, region=region) + version_path + "/" + project_id
            continue
        for template in URL_TEMPLATES:
            url = url.replace(template, project_id)
        url = url.rstrip("/")
        path = urlsplit(url).path.rstrip("/")
        if path.endswith("/" + project_id):
            urls[service] = url
        elif path.endswith(version_path):
            urls[service] = f"{url}/{project_id}"
        else:
            urls[service] = f"{url}{version_path}/{project_id}"
    return Endpoints(vpc=urls["vpc"], ecs=urls["ecs"], as_=urls["as"]), fallback


def _catalog_url(entries: list[Any], service: str, region: str) -> str | None:
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("type") != service:
            continue
        endpoints = [e for e in entry.get("endpoints") or [] if isinstance(e, dict) and e.get("url")]
        public = [e for e in endpoints if e.get("interface", "public") == "public"]
        in_region = [e for e in public if e.get("region") in (None, region) or e.get("region_id") == region]
        for choice in (in_region, public):
            if choice:
                return str(choice[0]["url"])
    return None


@dataclass(frozen=True)
class Token:
    value: str = field(repr=False)
    expires_at: dt.datetime
    project_id: str
    catalog: list[Any] = field(repr=False)


def _parse_time(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def default_cache_dir(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".cache")
    return Path(base) / "provision-min"


class TokenSource:
    """One project-scoped token per process, reused from the disk cache across commands until it expires."""

    def __init__(
        self,
        auth: CloudAuth,
        http: requests.Session,
        *,
        cache_dir: Path | None,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        calls: list[tuple[str, str]] | None = None,
    ) -> None:
        self.auth = auth
        self.http = http
        self.cache_file = cache_dir / f"token-{auth.cache_key()}.json" if cache_dir is not None else None
        self.now = now
        self.calls = calls if calls is not None else []
        self._token: Token | None = None

    def token(self) -> Token:
        """A token valid for at least 10 more minutes: from memory, from the cache, else a new one."""
        if self._token is not None and self._fresh(self._token):
            return self._token
        cached = self._load_cached()
        if cached is not None and self._fresh(cached):
            logs.get("provision-min").info(
                "token_reused", expires_at=cached.expires_at.isoformat(), source=self.auth.source
            )
            self._token = cached
            return cached
        self._token = self._issue()
        return self._token

    def invalidate(self) -> None:
        """Forget the token (the API answered 401): the next call issues a new one."""
        self._token = None
        if self.cache_file is not None:
            with contextlib.suppress(FileNotFoundError):
                self.cache_file.unlink()

    def _fresh(self, token: Token) -> bool:
        return token.expires_at - self.now() > TOKEN_REUSE_MARGIN

    def _issue(self) -> Token:
        url = f"{self.auth.auth_url}/auth/tokens"
        call = f"POST {url}"
        self.calls.append(("POST", url))
        try:
            response = self.http.post(
                url,
                data=json.dumps(self.auth.token_request()),
                headers={"Content-Type": "application/json;charset=utf8"},
                timeout=HTTP_TIMEOUT,
            )
        except requests.RequestException as exc:
            raise ProvisionError(f"cannot reach IAM for a token: {type(exc).__name__} (call: {call})") from None
        if response.status_code != 201:
            from provision_min.otc import error_from_response

            raise error_from_response(response, call)
        value = response.headers.get("X-Subject-Token", "")
        try:
            body = response.json()["token"]
            token = Token(
                value=value,
                expires_at=_parse_time(body["expires_at"]),
                project_id=str(body["project"]["id"]),
                catalog=list(body.get("catalog") or []),
            )
        except (ValueError, KeyError, TypeError):
            raise ApiError(response.status_code, "", "token answer lacks expires_at/project/catalog", call) from None
        if not value:
            raise ApiError(response.status_code, "", "token response without X-Subject-Token header", call)
        logs.register_secrets(value, source="token")
        logs.get("provision-min").info(
            "token_issued", expires_at=token.expires_at.isoformat(), project_id=token.project_id,
            source=self.auth.source,
        )
        self._store(token)
        return token

    def _load_cached(self) -> Token | None:
        if self.cache_file is None:
            return None
        try:
            raw = read_private(self.cache_file)
        except InputError:
            return None  # a cache others can read is not trusted; a new token replaces it
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            token = Token(
                value=str(data["token"]),
                expires_at=_parse_time(str(data["expires_at"])),
                project_id=str(data["project_id"]),
                catalog=list(data["catalog"]),
            )
        except (ValueError, KeyError, TypeError):
            return None
        logs.register_secrets(token.value, source="token")
        return token

    def _store(self, token: Token) -> None:
        if self.cache_file is None:
            return
        record = {
            "token": token.value,
            "expires_at": token.expires_at.isoformat(),
            "project_id": token.project_id,
            "catalog": token.catalog,
        }
        try:
            write_private(self.cache_file, json.dumps(record).encode("utf-8"))
        except OSError as exc:  # a cache we cannot write costs one token per command, nothing more
            logs.get("provision-min").warning("token_cache_unwritable", path=str(self.cache_file), error=str(exc))


def environment() -> dict[str, str]:
    """The process environment as a plain dict (so tests and callers can pass their own)."""
    return dict(os.environ)
