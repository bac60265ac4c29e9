"""OTC's AK/SK request signing (``SDK-HMAC-SHA256``), for calling the AS API with an agency's temporary keys.

A node has no password, only the temporary AK/SK of its ECS agency (``/openstack/latest/securitykey``), so
its calls to the AS API (the lifecycle callback) are signed as OTC's "API Request Signing Guide" describes,
the algorithm of Huawei's SDK signers (``huaweicloudsdkcore/signer/signer.py``, the APIG SDK's
``signer.py``):

* canonical request = ``METHOD\\nURI\\nQUERY\\nHEADERS\\nSIGNED\\nhex(sha256(body))`` where URI is the path with
  each segment percent-encoded (only ``A-Za-z0-9-_.~`` kept) and always ending in ``/``; QUERY the parameters
  sorted by name (then value), each ``name=value`` encoded the same way, joined by ``&``; HEADERS one
  ``name:value\\n`` per signed header (names lower-cased, values trimmed, sorted by name); SIGNED their names
  joined by ``;``;
* string to sign = ``SDK-HMAC-SHA256\\n<X-Sdk-Date>\\nhex(sha256(canonical request))``, ``X-Sdk-Date`` being
  ``YYYYMMDDTHHMMSSZ`` (UTC);
* ``Authorization: SDK-HMAC-SHA256 Access=<AK>, SignedHeaders=<h1;h2>, Signature=hex(hmac_sha256(SK, sts))``;
  a temporary key adds ``X-Security-Token`` (signed like any other header).

``verify_request`` is the other side, for the local cloud's AS service: the same computation from what
arrived, plus the checks OTC's gateway makes (known key, token of a temporary key, expiry, clock skew).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

ALGORITHM = "SDK-HMAC-SHA256"
DATE_HEADER = "X-Sdk-Date"
TOKEN_HEADER = "X-Security-Token"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
MAX_SKEW = 15 * 60  #: OTC refuses a request whose X-Sdk-Date is further than 15 minutes from its own clock
_AUTHORIZATION = re.compile(
    rf"^{ALGORITHM}\s+Access=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-fA-F]+)$")


@dataclass(frozen=True)
class SigningKey:
    """An AK/SK pair; ``token`` is set for an agency's temporary key (sent as ``X-Security-Token``)."""

    access: str
    secret: str = field(repr=False)
    token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class KnownKey:
    """What a verifier knows of an access key: the key itself and when it stops being valid (epoch)."""

    key: SigningKey
    expires_at: float | None = None


# -- the pieces of the canonical request -------------------------------------------------------------------
def _encode(text: str) -> str:
    return quote(text, safe="~")


def canonical_uri(path: str) -> str:
    """Each path segment decoded then encoded again; always a trailing slash (the SDKs' rule)."""
    uri = "/".join(_encode(segment) for segment in unquote(path or "/").split("/"))
    return uri if uri.endswith("/") else uri + "/"


def canonical_query(query: str) -> str:
    pairs = sorted((_encode(k), _encode(v)) for k, v in parse_qsl(query, keep_blank_values=True))
    return "&".join(f"{k}={v}" for k, v in pairs)


def canonical_request(method: str, path: str, query: str, headers: Mapping[str, str], signed: list[str],
                      body: bytes) -> str:
    """``headers`` keyed by lower-case name; ``signed`` sorted lower-case names, all present in ``headers``."""
    lines = "".join(f"{name}:{headers[name].strip()}\n" for name in signed)
    return "\n".join([method.upper(), canonical_uri(path), canonical_query(query), lines, ";".join(signed),
                      hashlib.sha256(body).hexdigest()])


def string_to_sign(canonical: str, sdk_date: str) -> str:
    return f"{ALGORITHM}\n{sdk_date}\n{hashlib.sha256(canonical.encode()).hexdigest()}"


def signature(secret: str, to_sign: str) -> str:
    return hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()


def _body(body: bytes | str | None) -> bytes:
    if body is None:
        return b""
    return body.encode() if isinstance(body, str) else body


def _host(url: str) -> str:
    """The ``Host`` header an HTTP client sends for ``url``: no user info, no default port."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    default = {"http": ":80", "https": ":443"}.get(parts.scheme, "")
    return host[: -len(default)] if default and host.endswith(default) else host


# -- signing -----------------------------------------------------------------------------------------------
def sign_request(method: str, url: str, headers: Mapping[str, str], body: bytes | str | None, key: SigningKey,
                 now: datetime | None = None) -> dict[str, str]:
    """The headers to add to a request so that OTC accepts it: ``X-Sdk-Date``, ``X-Security-Token`` (temporary
    keys) and ``Authorization``. Signs ``host`` (from the URL unless ``headers`` names it), the date, the token
    and every header in ``headers``; headers added later (User-Agent, ...) are not signed and do not matter."""
    when = (now or datetime.now(UTC)).astimezone(UTC)
    added = {DATE_HEADER: when.strftime(DATE_FORMAT)}
    if key.token:
        added[TOKEN_HEADER] = key.token
    lower = {name.lower(): str(value) for name, value in headers.items()}
    lower.setdefault("host", _host(url))
    lower.update({name.lower(): value for name, value in added.items()})
    signed = sorted(lower)
    parts = urlsplit(url)
    canonical = canonical_request(method, parts.path, parts.query, lower, signed, _body(body))
    mac = signature(key.secret, string_to_sign(canonical, added[DATE_HEADER]))
    added["Authorization"] = f"{ALGORITHM} Access={key.access}, SignedHeaders={';'.join(signed)}, Signature={mac}"
    return added


# -- verifying (the local AS service) ----------------------------------------------------------------------
def verify_request(method: str, target: str, headers: Mapping[str, str], body: bytes,
                   lookup: Callable[[str], KnownKey | None], now: float | None = None,
                   max_skew: float = MAX_SKEW) -> str | None:
    """None when the request is signed by a known, valid key; else why not, in one line (never a secret).

    ``target`` is the request line's path and query as they arrived; ``headers`` as they arrived (any case)."""
    lower = {name.lower(): value for name, value in headers.items()}
    authorization = lower.get("authorization", "").strip()
    if not authorization:
        return "no Authorization header: the request is not signed"
    match = _AUTHORIZATION.fullmatch(authorization)
    if match is None:
        return f"Authorization is not of the form '{ALGORITHM} Access=..., SignedHeaders=..., Signature=...'"
    access, signed_text, given = match.groups()
    known = lookup(access)
    if known is None:
        return f"unknown access key {access}"
    clock = time.time() if now is None else now
    if known.expires_at is not None and clock >= known.expires_at:
        return f"access key {access} expired at {_iso(known.expires_at)}"
    sdk_date = lower.get(DATE_HEADER.lower(), "")
    try:
        stamp = datetime.strptime(sdk_date, DATE_FORMAT).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return f"{DATE_HEADER} missing or not YYYYMMDDTHHMMSSZ"
    if abs(clock - stamp) > max_skew:
        return (f"{DATE_HEADER} {sdk_date} is {abs(clock - stamp):.0f} s from this server's clock "
                f"(at most {max_skew:.0f})")
    token = lower.get(TOKEN_HEADER.lower())
    if known.key.token and token is None:
        return f"access key {access} is temporary: {TOKEN_HEADER} missing"
    if known.key.token and not hmac.compare_digest(token or "", known.key.token):
        return f"{TOKEN_HEADER} does not belong to access key {access}"
    signed = signed_text.lower().split(";")
    for required in ("host", DATE_HEADER.lower()) + ((TOKEN_HEADER.lower(),) if token is not None else ()):
        if required not in signed:
            return f"SignedHeaders does not include {required}"
    missing = [name for name in signed if name not in lower]
    if missing:
        return f"signed header {missing[0]} is not in the request"
    path, _, query = target.partition("?")
    canonical = canonical_request(method, path, query, lower, signed, body)
    expected = signature(known.key.secret, string_to_sign(canonical, sdk_date))
    if not hmac.compare_digest(expected, given.lower()):
        return f"signature does not match (access key {access})"
    return None


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- the metadata service's document -----------------------------------------------------------------------
def parse_expiry(text: str) -> float | None:
    """``expires_at`` as the metadata service writes it (``2026-11-29T15:00:00.000000Z``) → epoch; None if
    empty or not a time."""
    value = text.strip()
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC).timestamp()
    except ValueError:
        return None


def format_expiry(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def key_from_securitykey(document: Any) -> KnownKey:
    """``{"credential": {"access", "secret", "securitytoken", "expires_at"}}`` → the key; ValueError if not
    that shape."""
    credential = document.get("credential") if isinstance(document, dict) else None
    if not isinstance(credential, dict):
        raise ValueError("no credential object")
    values = [credential.get(k) for k in ("access", "secret", "securitytoken")]
    if not all(isinstance(v, str) and v for v in values):
        raise ValueError("access, secret and securitytoken must be non-empty strings")
    access, secret, token = (str(v) for v in values)
    return KnownKey(SigningKey(access, secret, token), parse_expiry(str(credential.get("expires_at", ""))))
