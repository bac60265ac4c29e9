"""Every command the README shows a user parses as the CLI understands it, and names the test that runs it.

The README is the user's guide; a command in it that the CLI refuses, or that no test runs, is a broken promise.
Each shell line of its code blocks that calls one of our commands must (1) parse with that command's own
argument parser and (2) appear in ``EXERCISED`` with the test that runs it for real (against the local cloud,
real nodes in network namespaces, or the OTC fake); the test must exist.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from bootstrap_agent.cli import build_parser as agent_parser
from provision_min.cli import build_parser as provision_parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

LOCAL = "tests/test_local_cloud.py::test_up_scale_reboot_from_the_stale_copy_and_down"
OTC = "tests/test_provision_up_down.py::"

#: the start of each command line shown in the README → the test that runs it (file::function)
EXERCISED: dict[str, str] = {
    "provision-min up --cloud local": LOCAL,
    "provision-min status --cloud local": LOCAL,
    "provision-min scale 4 --cloud local": LOCAL,
    "provision-min ssh analytics11-agent-1 --cloud local": LOCAL,
    "provision-min logs analytics11-master-1 --cloud local": LOCAL,
    "provision-min ssh analytics11-master-1 --config":
        "tests/test_node_access.py::test_otc_ssh_goes_through_the_masters_public_address",
    "provision-min logs analytics11-master-1 mesos-master --config":
        "tests/test_node_access.py::test_otc_ssh_goes_through_the_masters_public_address",
    "provision-min down --cloud local": LOCAL,
    "provision-min image build":
        "tests/test_image_build.py::test_image_build_makes_its_own_network_and_prints_the_image_id",
    "provision-min plan --config": "tests/test_provision_plan.py::test_plan_prints_exactly_the_changes_up_then_makes",
    "provision-min up --config": "tests/test_provision_ready.py::test_up_waits_until_every_node_is_ready",
    "provision-min scale 5 --config": OTC + "test_scale_sets_the_desired_count_within_min_and_max",
    "provision-min status --config": OTC + "test_status_shows_what_exists",
    "provision-min down --config": OTC + "test_down_removes_everything_in_reverse_order_and_waits_for_the_instances",
    "provision-min --version": "tests/test_provision_cli.py::test_both_clis_tell_their_version",
    "provision-min migrate-credentials --config":
        "tests/test_provision_credentials.py::test_migrate_credentials_adds_the_operator_credential_to_an_older_state_file",
    "bootstrap-agent config set": "tests/test_daemon_credentials.py::test_config_set_needs_the_operator_credential",
    "bootstrap-agent config get": "tests/test_daemon.py::test_config_change_restarts_agents_one_at_a_time",
    "bootstrap-agent status": "tests/test_once.py::test_master_configures_itself_and_runs_its_services",
}

_PLACEHOLDERS = {"URL_OR_FILE": "/srv/x", "BUCKET": "eo-build", "K": "eo-key"}


def shown_commands() -> list[str]:
    """Our commands in the README: in ``sh`` blocks (continuations joined) and in inline code."""
    text = README.read_text()
    found: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" # ", 1)[0].strip()
            for part in line.split("&&"):
                part = part.strip()
                if part.startswith(("provision-min ", "bootstrap-agent ")):
                    found.append(" ".join(part.split()))
    for inline in re.findall(r"`((?:provision-min|bootstrap-agent) [^`]+)`", text):
        found.append(" ".join(inline.split()))
    return found


def test_the_readme_shows_our_commands() -> None:
    commands = shown_commands()
    assert any(c.startswith("provision-min up --cloud local") for c in commands), commands
    assert len(commands) >= 10


@pytest.mark.parametrize("command", shown_commands())
def test_each_command_parses_and_is_run_by_a_test(command: str) -> None:
    words = [_PLACEHOLDERS.get(w, w) for w in shlex.split(command)]
    parser = provision_parser() if words[0] == "provision-min" else agent_parser()
    if words[1:] != ["--version"]:
        parser.parse_args(words[1:])  # SystemExit (exit 2) when the CLI does not know it
    prefix = next((p for p in EXERCISED if command.startswith(p)), None)
    assert prefix is not None, f"no test named for the README's {command!r}: add it to EXERCISED"
    path, name = EXERCISED[prefix].split("::")
    assert re.search(rf"^def {re.escape(name)}\(", (ROOT / path).read_text(), flags=re.M), EXERCISED[prefix]
