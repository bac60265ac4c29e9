"""A project-scoped token, issued once and reused across commands until 10 minutes before it expires.

A token is valid for 24 hours and issuing one is slow and rate-limited, so it is kept (mode 0600, keyed by
auth URL, user and project) in ``$XDG_CACHE_HOME/provision-min/`` and reused by later commands.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from bootstrap_agent import logs
from provision_min.credentials import CloudAuth
from provision_min.errors import ApiError, InputError, ProvisionError
from provision_min.files import read_private, write_private
from provision_min.http import HTTP_TIMEOUT, error_from_response

TOKEN_REUSE_MARGIN = dt.timedelta(minutes=10)


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
