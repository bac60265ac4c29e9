"""The command lines as a user meets them: dashboard access on OTC, ``down`` asking first, and the conventions
both CLIs share (``--version``, one-line errors, flags of one cloud refused on the other, logs on request,
``plan``'s summary and ``--detailed-exitcode``, ``--json``).

OTC is the stateful fake (``tests/support/fake_otc.py``); the S3 bucket check is left out (no ``alluxio``),
so every call goes to the fake and nothing else.
"""

from __future__ import annotations

import io
import json
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from provision_min import cli
from provision_min.local.layout import STATE_ROOT_ENV
from tests.support.fake_otc import PASSWORD, FakeOtc
from tests.support.provision_env import Env, cluster_document

OPS_HASH = "$6$0123456789abcdef$" + "a" * 86
EXAMPLE = Path(cli.__file__).parent / "examples" / "cluster.yaml"


@pytest.fixture
def env(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Env:
    desk = Env(tmp_path, capsys, monkeypatch)
    desk.write_cluster(cluster_document(alluxio=None, credentials=None))
    return desk


class Terminal(io.StringIO):
    """Standard input that is a terminal, with a person's answer typed in."""

    def isatty(self) -> bool:
        return True


def state_of(env: Env) -> dict[str, Any]:
    return dict(json.loads(env.state_file.read_text()))


def openssl_hash(password: str, salt: str) -> str:
    return subprocess.run(["openssl", "passwd", "-6", "-salt", salt, "-stdin"], input=password,
                          capture_output=True, text=True, check=True).stdout.strip()


# --- 1. dashboard access --------------------------------------------------------------------------------------


def test_up_generates_the_dashboard_password_keeps_it_0600_and_gives_the_masters_only_its_hash(
        env: Env, cloud: FakeOtc) -> None:
    result = env.run("up")
    assert result.code == 0, result.err

    state = state_of(env)
    password, password_hash = state["dashboard_password"], state["dashboard_password_hash"]
    assert len(password) >= 20 and stat.S_IMODE(env.state_file.stat().st_mode) == 0o600
    master, agent = cloud.user_data["analytics11-master-1"], cloud.user_data["analytics11-agents"]
    assert master["dashboard"]["user"] == "admin" and master["dashboard"]["password_hash"] == password_hash
    assert openssl_hash(password, password_hash.split("$")[2]) == password_hash  # the hash of that password
    assert "dashboard" not in agent
    assert password not in json.dumps(master) + json.dumps(agent)
    assert f"dashboard login: user admin, password: dashboard_password in {env.state_file}" in result.lines
    assert password not in result.out + result.err

    status = env.run("status")
    assert f"dashboard login: user admin, password: dashboard_password in {env.state_file}" in status.out
    as_json = json.loads(env.run("status", "--json").out)
    assert as_json["login"]["user"] == "admin" and as_json["login"]["password_file"] == str(env.state_file)
    for run in (status.out + status.err, json.dumps(as_json)):
        assert password not in run and password_hash not in run


def test_the_cluster_file_sets_the_dashboard_user_and_hash(env: Env, cloud: FakeOtc) -> None:
    env.write_cluster(cluster_document(alluxio=None, credentials=None,
                                       dashboard={"user": "ops", "password_hash": OPS_HASH}))
    result = env.run("up")
    assert result.code == 0, result.err

    master = cloud.user_data["analytics11-master-1"]
    assert master["dashboard"]["user"] == "ops" and master["dashboard"]["password_hash"] == OPS_HASH
    assert not state_of(env).get("dashboard_password")  # nothing generated: the user holds the password
    assert ("dashboard login: user ops, the password whose hash is dashboard.password_hash in the cluster file"
            in result.lines)


@pytest.mark.parametrize(("dashboard", "message"), [
    ({"password_hash": "plain-text"}, "dashboard.password_hash: not a password hash nginx accepts"),
    ({"user": "no spaces"}, "dashboard.user: 1-32 characters"),
    ({"colour": "blue"}, "dashboard.colour: unknown key (known: auth, user, password_hash)"),
    ("admin", "dashboard: expected a mapping"),
])
def test_a_bad_dashboard_section_is_one_line_naming_the_field(env: Env, dashboard: Any, message: str) -> None:
    path = env.write_cluster(cluster_document(alluxio=None, credentials=None, dashboard=dashboard))
    result = env.run("plan", "--offline")
    assert result.code == 2 and result.out == ""
    assert result.error_line().startswith(f"provision-min: {path}: {message}"), result.err
    assert result.err.count("\n") == 1


# --- 4. down asks ---------------------------------------------------------------------------------------------


def test_down_without_a_terminal_and_without_yes_refuses_before_any_call(env: Env, cloud: FakeOtc) -> None:
    assert env.run("up").code == 0
    before = len(cloud.calls)

    result = env.run("down")

    assert result.code == 2 and result.out == ""
    assert result.error_line() == ("provision-min: down: standard input is not a terminal, so nobody can confirm; "
                                   "pass --yes to remove cluster analytics11 without asking (nothing was deleted)")
    assert result.err.count("\n") == 1
    assert len(cloud.calls) == before and not cloud.empty() and env.state_file.exists()


def test_down_on_a_terminal_lists_what_it_removes_and_asks(env: Env, cloud: FakeOtc,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    assert env.run("up").code == 0
    before = len(cloud.calls)

    monkeypatch.setattr(sys, "stdin", Terminal("no\n"))
    refused = env.run("down")
    assert refused.code == 2
    assert "  - AS group analytics11-agents with its 2 instance(s)" in refused.err
    assert "  - vpc analytics11-vpc" in refused.err and f"  - state file {env.state_file}" in refused.err
    # (a terminal echoes the typed answer and its newline; this one does not)
    assert refused.err.endswith("provision-min: down: not confirmed; nothing of cluster analytics11 was deleted\n")
    assert {c.method for c in cloud.calls[before:]} <= {"GET"} and not cloud.empty()

    monkeypatch.setattr(sys, "stdin", Terminal("yes\n"))
    agreed = env.run("down")
    assert agreed.code == 0, agreed.err
    assert "Type 'yes' to remove cluster analytics11" in agreed.err
    assert cloud.empty() and not env.state_file.exists()


def test_down_yes_removes_without_asking_and_reports_json(env: Env, cloud: FakeOtc) -> None:
    assert env.run("up").code == 0
    result = env.run("down", "--yes", "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["state_removed"] is True and "vpc analytics11-vpc" in report["removed"]
    assert "Type 'yes'" not in result.err and cloud.empty()


def test_local_down_without_a_terminal_refuses_before_anything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(STATE_ROOT_ENV, str(tmp_path / "state"))
    assert cli.main(["down", "--cloud", "local", "--config", str(EXAMPLE)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("provision-min: down: standard input is not a terminal") and err.count("\n") == 1
    assert not (tmp_path / "state").exists()


# --- 8. CLI conventions ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("program", [["provision-min"], ["bootstrap-agent"]])
def test_both_clis_tell_their_version(program: list[str]) -> None:
    module = {"provision-min": "provision_min", "bootstrap-agent": "bootstrap_agent.cli"}[program[0]]
    result = subprocess.run([sys.executable, "-m", module, "--version"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and result.stdout.strip() == f"{program[0]} 0.1.0"


@pytest.mark.parametrize(("argv", "message"), [
    (["up", "--subnet", "10.231.9.0/24"], "provision-min: --subnet: only with --cloud local"),
    (["up", "--mesos-deb", "m.deb", "--alluxio-tarball", "a.tgz"],
     "provision-min: --mesos-deb: only with --cloud local"),
    (["up", "--cloud", "local", "--create-bucket"], "provision-min: --create-bucket: not with --cloud local"),
    (["status", "--cloud", "local", "--poll-interval", "1"],
     "provision-min: --poll-interval: not with --cloud local"),
])
def test_a_flag_of_the_other_cloud_is_refused_in_one_line(env: Env, cloud: FakeOtc, argv: list[str],
                                                          message: str) -> None:
    result = env.run(*argv)
    assert result.code == 2 and result.out == ""
    assert result.err.startswith(message) and result.err.count("\n") == 1, result.err
    assert cloud.calls == []


@pytest.mark.parametrize(("module", "argv", "start"), [
    ("provision_min", ["up"], "provision-min: the following arguments are required: --config"),
    ("provision_min", ["launch"], "provision-min: argument COMMAND: invalid choice: 'launch'"),
    ("bootstrap_agent.cli", ["render", "--out", "x"], "bootstrap-agent: the following arguments are required"),
    ("bootstrap_agent.cli", ["status", "--bogus"], "bootstrap-agent: unrecognized arguments: --bogus"),
])
def test_usage_errors_are_one_line_with_the_programs_prefix_and_exit_2(module: str, argv: list[str],
                                                                      start: str) -> None:
    result = subprocess.run([sys.executable, "-m", module, *argv], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith(start) and result.stderr.count("\n") == 1, result.stderr


def test_log_lines_only_on_request(env: Env, cloud: FakeOtc) -> None:
    quiet = env.run("up")
    assert quiet.code == 0 and not [line for line in quiet.err.splitlines() if line.startswith("{")], quiet.err
    verbose = env.run("up", "--verbose")
    events = [json.loads(line)["event"] for line in verbose.err.splitlines() if line.startswith("{")]
    assert "up_complete" in events
    as_json = env.run("status", "--log-format", "json")
    assert any(line.startswith("{") for line in as_json.err.splitlines())
    for result in (quiet, verbose, as_json):
        assert PASSWORD not in result.out + result.err


def test_plan_ends_with_a_summary_and_has_an_exit_code_for_pending_changes(env: Env, cloud: FakeOtc) -> None:
    offline = env.run("plan", "--offline")
    assert offline.code == 0 and offline.lines[-1] == "plan: 30 to create, 0 existing"
    assert offline.lines[0] == "POST   vpc analytics11-vpc (vpc_created)"
    assert env.run("plan", "--offline", "--detailed-exitcode").code == 3
    as_json = env.run("plan", "--offline", "--json")
    assert all(json.loads(line)["method"] for line in as_json.lines)  # stdout: only the calls
    assert as_json.err == "plan: 30 to create, 0 existing\n"

    assert env.run("up").code == 0
    complete = env.run("plan", "--detailed-exitcode")
    assert complete.code == 0 and complete.lines[-1].startswith("plan: 0 to create, 12 existing")


def test_scale_reports_json_on_request(env: Env, cloud: FakeOtc) -> None:
    assert env.run("up").code == 0
    result = env.run("scale", "3", "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert (report["group"], report["before"], report["after"]) == ("analytics11-agents", 2, 3)


def test_bootstrap_agent_validate_reports_json_on_request() -> None:
    example = Path(cli.__file__).parents[1] / "bootstrap_agent" / "examples" / "agent.json"
    result = subprocess.run([sys.executable, "-m", "bootstrap_agent.cli", "validate", "--json", str(example)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and result.stderr == ""
    assert json.loads(result.stdout) == {"valid": True, "cluster": "analytics11", "role": "agent",
                                         "masters": ["192.168.0.10"]}


def test_up_reports_json_on_request_with_the_progress_on_stderr(env: Env, cloud: FakeOtc) -> None:
    result = env.run("up", "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)  # stdout: the one object, nothing else
    assert report["masters"] == {"analytics11-master-1": "192.168.0.10"}
    assert report["dashboard"] == f"https://{report['public_ip']}/"
    assert report["login"]["user"] == "admin" and report["login"]["password_file"] == str(env.state_file)
    assert "dashboard login: user admin" in result.err
    assert state_of(env)["dashboard_password"] not in result.out + result.err
