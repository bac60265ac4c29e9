"""The dashboard's self-signed certificate: made once per instance on the node itself, never in the image.

An image carrying a key would hand the same key to every cluster built from it. The pair is kept in the
agent's state folder, which a new instance (new uuid) wipes, so each instance makes its own at first boot.
Making a pair is kept apart from keeping it: a pass that is refused later (bad input) must not have written
anything, so ``once`` generates in memory and saves only once the pass commits. ``openssl`` is on every
Debian node; calling it beats adding a crypto library to the agent.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from bootstrap_agent.errors import SourceUnavailable
from bootstrap_agent.install import write_atomic

CERT_NAME, KEY_NAME = "dashboard.crt", "dashboard.key"
VALID_DAYS = 3650

Pair = tuple[str, str]  # (certificate PEM, key PEM)


def load(folder: Path) -> Pair | None:
    try:
        return (folder / CERT_NAME).read_text(), (folder / KEY_NAME).read_text()
    except FileNotFoundError:
        return None


def generate(common_name: str, *ips: str) -> Pair:
    """A new self-signed pair for ``ips``; the key touches the disk only in a private temporary folder.

    provision-min makes a cluster's pair with the same call (all master addresses), so it can pin it."""
    with tempfile.TemporaryDirectory(prefix="ba-tls-") as tmp:
        cert, key = Path(tmp, CERT_NAME), Path(tmp, KEY_NAME)
        try:
            subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-sha256", "-nodes", "-days", str(VALID_DAYS),
                 "-subj", f"/CN={common_name}", "-addext", "subjectAltName=" + ",".join(f"IP:{ip}" for ip in ips),
                 "-keyout", str(key), "-out", str(cert)],
                check=True, capture_output=True, timeout=60,
            )
        except FileNotFoundError:
            raise SourceUnavailable("openssl is not installed: cannot make the dashboard's certificate") from None
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            raise SourceUnavailable(f"openssl could not make the dashboard's certificate: {exc}") from None
        return cert.read_text(), key.read_text()


def save(folder: Path, pair: Pair) -> None:
    if load(folder) == pair:
        return
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(folder / KEY_NAME, pair[1].encode(), 0o600)
    write_atomic(folder / CERT_NAME, pair[0].encode(), 0o644)
