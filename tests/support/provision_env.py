"""Shared set-up for the provisioner's tests: a cluster file, an environment, a clock, and the CLI runner.

Nothing here talks to a network: the OTC API is the ``FakeOtc`` behind ``responses`` and OBS is moto's server
on loopback. The clock advances only when the provisioner sleeps, so polling costs no real time.
"""

from __future__ import annotations

import copy
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import responses
import yaml

from provision_min import cli
from provision_min.wait import Poller
from tests.support import fake_otc
from tests.support.fake_otc import FakeOtc
from tests.support.moto_s3 import S3Server, moto_s3

EXAMPLE = Path(__file__).resolve().parents[2] / "provision_min" / "examples" / "cluster.yaml"


def cluster_document(**overrides: Any) -> dict[str, Any]:
    """The shipped example with ``overrides`` applied (top-level keys; ``None`` removes one)."""
    document: dict[str, Any] = copy.deepcopy(yaml.safe_load(EXAMPLE.read_text()))
    for key, value in overrides.items():
        if value is None:
            document.pop(key, None)
        else:
            document[key] = value
    return document


LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def forbid_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any name lookup but loopback: the OTC API is faked in-process and OBS is moto on 127.0.0.1, so a
    lookup of anything else would be real network traffic (and a test that silently depends on it)."""
    real = socket.getaddrinfo

    def loopback_only(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in LOOPBACK:
            raise socket.gaierror(socket.EAI_NONAME, f"no network in tests (lookup of {name})")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_only)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept = 0.0

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()

    def error_line(self) -> str:
        """The one-line ``provision-min: ...`` message (log lines are JSON and start with ``{``; warnings are not
        the error)."""
        lines = [line for line in self.err.splitlines()
                 if line.startswith("provision-min:") and not line.startswith("provision-min: warning:")]
        assert len(lines) == 1, self.err
        return lines[0]


class Env:
    """A user's desk: a folder with the cluster file, credentials in OS_* variables, a token cache."""

    def __init__(self, root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.capsys = capsys
        self.home = root / "home"
        self.home.mkdir()
        self.work = root / "work"
        self.work.mkdir()
        monkeypatch.chdir(self.work)
        forbid_network(monkeypatch)
        self.cluster_file = self.work / "cluster.yaml"
        self.clock = FakeClock()
        self.vars: dict[str, str] = {
            "HOME": str(self.home),
            "XDG_CACHE_HOME": str(root / "cache"),
            "PATH": "/usr/bin:/bin",
            "OS_AUTH_URL": "https://iam.eu-de.otc.t-systems.com/v3",
            "OS_USERNAME": fake_otc.USER,
            "OS_PASSWORD": fake_otc.PASSWORD,
            "OS_USER_DOMAIN_NAME": fake_otc.DOMAIN,
        }

    def write_cluster(self, document: dict[str, Any], name: str = "cluster.yaml") -> Path:
        path = self.work / name
        text = json.dumps(document, indent=1) if name.endswith(".json") else yaml.safe_dump(document)
        path.write_text(text)
        self.cluster_file = path
        return path

    @property
    def state_file(self) -> Path:
        return self.cluster_file.parent / "analytics11.state.json"

    def run(self, *argv: str, env: dict[str, str] | None = None) -> Result:
        args = list(argv)
        if "--config" not in args:  # before a ``--``: what follows it is a remote command (ssh)
            split = args.index("--") if "--" in args else len(args)
            args[split:split] = ["--config", str(self.cluster_file)]
        poller = Poller(sleep=self.clock.sleep, clock=self.clock.time, interval=2.0)
        self.capsys.readouterr()
        code = cli.main(args, env=self.vars if env is None else env, poller=poller)
        captured = self.capsys.readouterr()
        return Result(code, captured.out, captured.err)


@pytest.fixture
def cloud() -> Iterator[FakeOtc]:
    """The fake OTC API; a test fails if any request broke the documented contract."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        fake = FakeOtc()
        fake.install(rsps)
        yield fake
        assert fake.violations == [], "requests that break the documented API contract"


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    """moto's real S3 server on loopback, one per test module."""
    with moto_s3() as server:
        yield server
