"""Reading a master's cluster status document (``https://<public address>/status.json``) over pinned TLS.

The document sits behind the dashboard's basic auth; the password goes only to a server that proves it holds
the cluster's own key: the certificate from the state file is the only trust anchor, and its SHA-256 fingerprint
must match exactly (``dashboard_tls``). Nothing here disables verification.

Answers are sorted into what waiting can outlast (no answer yet, no document yet) and what it cannot (another
certificate, a refused password, a locked dashboard): the second kind ends ``up`` at once instead of after its
timeout.
"""

from __future__ import annotations

import email.utils
import tempfile
from dataclasses import dataclass, field
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from provision_min.dashboard_tls import fingerprint
from provision_min.errors import ProvisionError

STATUS_PATH = "/status.json"
TIMEOUT = (5.0, 10.0)


class CertificateRefused(ProvisionError):
    """The master presented a certificate that is not the cluster's: the password was not sent."""


class StatusRefused(ProvisionError):
    """The master answered, but will not give the status to these credentials (a wait cannot change that)."""


class NoAnswer(ProvisionError):
    """No status yet: the master does not answer, or its agent has not written the document (waiting helps)."""


@dataclass(frozen=True)
class StatusAccess:
    """Where the status is and what proves both sides: the pinned certificate and the dashboard login."""

    address: str  # the master's public address (the EIP)
    user: str
    password: str = field(repr=False)
    certificate: str = field(repr=False)  # PEM, from the state file

    @property
    def url(self) -> str:
        return f"https://{self.address}{STATUS_PATH}"


@dataclass(frozen=True)
class StatusAnswer:
    document: dict[str, Any]
    age: float | None  # seconds between rendered_at and the master's own clock (its Date header)


class PinnedAdapter(HTTPAdapter):
    """urllib3 checks the peer's fingerprint instead of its host name (the EIP is in no certificate)."""

    def __init__(self, pinned: str) -> None:
        self.pinned = pinned
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["assert_fingerprint"] = self.pinned
        super().init_poolmanager(*args, **kwargs)


def fetch(access: StatusAccess) -> StatusAnswer:
    """One GET of the status document; ``NoAnswer``, ``StatusRefused`` or ``CertificateRefused`` otherwise."""
    with tempfile.NamedTemporaryFile("w", prefix="provision-min-ca-", suffix=".pem") as anchor:
        anchor.write(access.certificate)  # a certificate is public: only the key is a secret
        anchor.flush()
        session = requests.Session()
        session.mount("https://", PinnedAdapter(fingerprint(access.certificate)))
        try:
            response = session.get(access.url, auth=(access.user, access.password), verify=anchor.name,
                                   timeout=TIMEOUT, allow_redirects=False)
        except requests.exceptions.SSLError:
            raise CertificateRefused(
                f"{access.url}: the server's certificate is not the cluster's (the state file pins SHA-256 "
                f"{fingerprint(access.certificate)}); the password was not sent. Is {access.address} this "
                "cluster's master?") from None
        except requests.RequestException as exc:
            raise NoAnswer(f"no answer from {access.address} ({type(exc).__name__})") from None
        finally:
            session.close()
    return _answer(access, response)


def _answer(access: StatusAccess, response: requests.Response) -> StatusAnswer:
    if response.status_code == 401:
        raise StatusRefused(f"{access.url}: the master refused the dashboard password of user {access.user} "
                            "(HTTP 401): the state file and the masters' user-data disagree")
    if response.status_code == 403:
        raise StatusRefused(f"{access.url}: HTTP 403, the master serves no status (dashboard locked or auth off)")
    if response.status_code != 200:
        raise NoAnswer(f"{access.address}: HTTP {response.status_code}, no status document yet")
    try:
        document = response.json()
    except ValueError:
        raise NoAnswer(f"{access.address}: the status document is not JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("members"), list):
        raise NoAnswer(f"{access.address}: the status document has no members list")
    return StatusAnswer(document, _age(document.get("rendered_at"), response.headers.get("Date")))


def _age(rendered_at: Any, date_header: str | None) -> float | None:
    """How old the view is by the master's own clock (no trust in this machine's clock); None when unknown."""
    if not isinstance(rendered_at, str) or not date_header:
        return None
    from datetime import datetime

    try:
        rendered = datetime.fromisoformat(rendered_at)
        now = email.utils.parsedate_to_datetime(date_header)
    except (ValueError, TypeError):
        return None
    return max(0.0, (now - rendered).total_seconds())
