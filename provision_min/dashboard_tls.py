"""The dashboard's TLS pair of an OTC cluster: made by provision-min, so provision-min can verify what it talks to.

A master that made its own certificate at first boot (``bootstrap_agent.tls``) could be anybody to a client: the
pair would exist only on the node. So on OTC the first ``up`` makes one pair for the cluster (the masters'
private addresses in its names), keeps it in the state file (0600, beside the cluster secret), hands it to every
master in its user-data (``dashboard.tls_certificate``/``tls_key``: the key is a secret there, 0600 on the node)
and, when it reads the masters' status document, trusts exactly that certificate: it is the only trust anchor and
its SHA-256 fingerprint must match (the public address, an EIP attached after the masters exist, is in no
certificate, so the pin replaces the host-name check; it is never skipped).
"""

from __future__ import annotations

import hashlib
import ssl

from bootstrap_agent import tls
from bootstrap_agent.errors import SourceUnavailable
from provision_min.errors import ProvisionError

Pair = tls.Pair


def make_pair(cluster: str, master_ips: tuple[str, ...]) -> Pair:
    """A new self-signed pair for the cluster's masters (``openssl``, as the node agent makes its own)."""
    try:
        return tls.generate(f"{cluster}-dashboard", *master_ips)
    except SourceUnavailable as exc:
        raise ProvisionError(f"cannot make the dashboard's TLS pair: {exc}") from None


def fingerprint(certificate_pem: str) -> str:
    """The certificate's SHA-256 fingerprint as ``AB:CD:...`` (what browsers show, what urllib3 pins)."""
    digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(certificate_pem)).hexdigest().upper()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))
