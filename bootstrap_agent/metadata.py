"""Fetch user-data and instance metadata, bounded in time, and never lose them.

cloud-init hangs when the metadata service does (#2812) and does not retry a slow one (#3989). Here every
request has a connect and a read timeout, every source a few attempts with backoff, and the sources fall
through in order: the node's nginx cache, the metadata service itself, the last good copy on disk.
The stdlib client keeps ``once`` fast to start (requests costs ~0.2 s of imports) and ignores proxy
variables, which must never apply to a link-local metadata service.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from bootstrap_agent.errors import SourceUnavailable
from bootstrap_agent.facts import TemporaryCredentials

USER_DATA_PATH = "/openstack/latest/user_data"
META_DATA_PATH = "/openstack/latest/meta_data.json"
SECURITY_KEY_PATH = "/openstack/latest/securitykey"


@dataclass(frozen=True)
class Retry:
    attempts: int = 3
    backoff: float = 0.25  # seconds before the 2nd attempt, doubled after that
    connect_timeout: float = 1.0
    read_timeout: float = 3.0


@dataclass(frozen=True)
class Fetched:
    body: bytes
    source: str  # "cache", "metadata" or "last-good"
    url: str | None = None


_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(url: str, retry: Retry) -> bytes:
    """Body of a 200 answer; raises ``OSError`` with the reason after the last attempt."""
    last = "no attempt"
    for attempt in range(retry.attempts):
        if attempt:
            time.sleep(retry.backoff * (2 ** (attempt - 1)))
        try:
            # urllib has one timeout for connect and each read; the read timeout is the larger bound.
            with _opener.open(url, timeout=max(retry.connect_timeout, retry.read_timeout)) as response:
                body: bytes = response.read()
                return body
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
            if exc.code == 404:
                break  # an answer, not a failure: retrying cannot change it
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            last = str(reason)
    raise OSError(f"{url}: {last}")


def fetch_user_data(user_data_url: str, metadata_url: str, retry: Retry) -> tuple[Fetched | None, list[str]]:
    """User-data from the cache, else from the metadata service; ``None`` and the reasons when neither."""
    errors: list[str] = []
    for source, url in (("cache", user_data_url), ("metadata", metadata_url.rstrip("/") + USER_DATA_PATH)):
        try:
            return Fetched(http_get(url, retry), source, url), errors
        except OSError as exc:
            errors.append(f"{source}: {exc}")
    return None, errors


def fetch_meta_data(metadata_url: str, retry: Retry) -> dict[str, Any]:
    url = metadata_url.rstrip("/") + META_DATA_PATH
    try:
        data = json.loads(http_get(url, retry))
    except OSError as exc:
        raise SourceUnavailable(f"instance metadata unavailable: {exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise SourceUnavailable(f"instance metadata at {url} is not JSON") from None
    if not isinstance(data, dict):
        raise SourceUnavailable(f"instance metadata at {url} is not a JSON object")
    return data


def fetch_security_key(metadata_url: str, retry: Retry) -> TemporaryCredentials:
    """The ECS agency's temporary AK/SK and token (valid one hour, renewed 10 minutes before expiry).

    Asked of the metadata service directly, never through the nginx cache: these must not sit on disk in a
    cache that anything on the node can read.
    """
    url = metadata_url.rstrip("/") + SECURITY_KEY_PATH
    try:
        data = json.loads(http_get(url, retry))
        credential = data["credential"]
        result = TemporaryCredentials(
            str(credential["access"]), str(credential["secret"]), str(credential["securitytoken"]),
            str(credential.get("expires_at", "")),
        )
    except OSError as exc:
        raise SourceUnavailable(f"agency credentials unavailable (does the ECS have an agency?): {exc}") from None
    except (ValueError, KeyError, TypeError):
        raise SourceUnavailable(f"agency credentials at {url} are not the documented JSON") from None
    if not (result.access and result.secret and result.token):
        raise SourceUnavailable(f"agency credentials at {url} are empty")
    return result
