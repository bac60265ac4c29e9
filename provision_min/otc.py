"""A thin client for the OTC REST API: one method per HTTP verb, errors as one line.

python-otcextensions lacks lifecycle hooks and the asynchronous ECS API, so the provisioner speaks REST
with ``requests``. This layer adds only what every call needs: the token header, the service's base URL from
the catalog, JSON in and out, a re-authentication when the API says 401, a timeout, a log line, and an
``ApiError`` carrying HTTP status, OTC's error code and message and the call — OTC answers errors in several
shapes depending on the service, and the operator should not have to know which.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import requests

from bootstrap_agent import logs
from provision_min.catalog import PROVISIONER_SERVICES, Endpoints, endpoints_from_catalog
from provision_min.credentials import CloudAuth
from provision_min.errors import ApiError, NotFoundError, ProvisionError
from provision_min.http import HTTP_TIMEOUT, error_from_response
from provision_min.token import TokenSource, default_cache_dir


class OtcClient:
    """Calls below the services' base URLs (``client.get("vpc", "/vpcs")``); counts every call it makes."""

    def __init__(self, tokens: TokenSource, http: requests.Session, region: str,
                 services: Sequence[str] = PROVISIONER_SERVICES) -> None:
        self.tokens = tokens
        self.http = http
        self.region = region
        self.services = tuple(services)  # the catalog entries this client calls (``provision_min.catalog``)
        self.calls = tokens.calls  # (method, url) of every call, the token request included
        self._endpoints: Endpoints | None = None

    @classmethod
    def connect(cls, auth: CloudAuth, region: str, env: Mapping[str, str], *, cache_token: bool = True,
                services: Sequence[str] = PROVISIONER_SERVICES, http: requests.Session | None = None) -> OtcClient:
        """A client logging in with ``auth``; the token shared with every command through the user's cache."""
        http = http or requests.Session()
        cache_dir: Path | None = default_cache_dir(env) if cache_token else None
        return cls(TokenSource(auth, http, cache_dir=cache_dir), http, region, services)

    @property
    def project_id(self) -> str:
        return self.tokens.token().project_id

    @property
    def endpoints(self) -> Endpoints:
        if self._endpoints is None:
            token = self.tokens.token()
            self._endpoints, fallback = endpoints_from_catalog(
                token.catalog, self.region, token.project_id, self.services
            )
            if fallback:
                logs.get("provision-min").warning("endpoint_fallback", services=fallback, region=self.region)
        return self._endpoints

    def url(self, service: str, path: str, params: Mapping[str, Any] | None = None) -> str:
        url = self.endpoints.base(service) + path
        if params:
            url += "?" + urlencode(params)
        return url

    def get(self, service: str, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.request("GET", service, path, params=params)

    def get_or_none(self, service: str, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """The resource, or None when the API says 404 (gone, or never there)."""
        try:
            return self.request("GET", service, path, params=params)
        except NotFoundError:
            return None

    def post(self, service: str, path: str, body: Any) -> Any:
        return self.request("POST", service, path, body=body)

    def put(self, service: str, path: str, body: Any) -> Any:
        return self.request("PUT", service, path, body=body)

    def delete(self, service: str, path: str, params: Mapping[str, Any] | None = None) -> bool:
        """Delete; False when it was already gone (404), which is what ``down`` wants anyway."""
        try:
            self.request("DELETE", service, path, params=params)
        except NotFoundError:
            return False
        return True

    def request(self, method: str, service: str, path: str, *, body: Any = None,
                params: Mapping[str, Any] | None = None) -> Any:
        url = self.url(service, path, params)
        call = f"{method} {url}"
        data = json.dumps(body) if body is not None else None
        for attempt in (1, 2):
            token = self.tokens.token()
            headers = {"X-Auth-Token": token.value, "Accept": "application/json"}
            if data is not None:
                headers["Content-Type"] = "application/json"
            started = time.monotonic()
            self.calls.append((method, url))
            try:
                response = self.http.request(method, url, data=data, headers=headers, timeout=HTTP_TIMEOUT)
            except requests.RequestException as exc:
                raise ProvisionError(f"cannot reach the OTC API: {type(exc).__name__} (call: {call})") from None
            elapsed_ms = round((time.monotonic() - started) * 1000)
            log = logs.get("provision-min")
            (log.debug if method == "GET" else log.info)(
                "otc_call", method=method, url=url, status=response.status_code, ms=elapsed_ms
            )
            if response.status_code == 401 and attempt == 1:
                # The token expired or was revoked early: a 401 means nothing was done, so asking again is safe.
                self.tokens.invalidate()
                continue
            if response.status_code >= 400:
                raise error_from_response(response, call)
            if not response.content:
                return None
            try:
                return response.json()
            except ValueError:
                raise ApiError(response.status_code, "", "the answer is not JSON", call) from None
        raise AssertionError("unreachable")  # pragma: no cover
