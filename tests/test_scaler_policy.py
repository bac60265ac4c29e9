"""The scaler's policy (``autoscaling``): off by default, and every policy that makes no sense is refused with one
line naming the field, in the masters' user-data and in the cluster file, before anything is built."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from bootstrap_agent.errors import InvalidInput
from bootstrap_agent.schema import validate
from bootstrap_agent.schema.autoscaling import AutoscalingSettings
from provision_min import config
from provision_min.errors import InputError
from tests.support.provision_env import Env, cluster_document

EXAMPLES = Path(__file__).resolve().parents[1] / "bootstrap_agent" / "examples"
GOOD = {"enabled": True, "min": 1, "max": 6}


def master(autoscaling: Any = None) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((EXAMPLES / "agent.json").read_text())
    document["role"] = "master"
    if autoscaling is not None:
        document["autoscaling"] = autoscaling
    return document


def test_off_by_default_and_old_documents_keep_their_meaning() -> None:
    assert validate(master()).autoscaling == AutoscalingSettings()
    assert not validate(master()).autoscaling.enabled
    policy = validate(master({**GOOD, "scale_out_above": 0.75, "cooldown_in": 900, "group": "eo-agents",
                              "endpoint": "http://10.0.0.2:8180/autoscaling-api/v1/local/"})).autoscaling
    assert (policy.endpoint, policy.group) == ("http://10.0.0.2:8180/autoscaling-api/v1/local", "eo-agents")
    assert policy.enabled and (policy.min, policy.max) == (1, 6)
    assert policy.scale_out_above == 0.75 and policy.cooldown_in == 900
    assert policy.setpoint == pytest.approx((0.75 + 0.4) / 2)


BAD: list[tuple[dict[str, Any], str, str]] = [
    ({**GOOD, "min": 7, "max": 3}, "autoscaling.min", "larger than autoscaling.max 3"),
    ({**GOOD, "scale_out_above": 0.4, "scale_in_below": 0.6}, "autoscaling.scale_in_below", "inverted"),
    ({**GOOD, "scale_out_above": 0.5, "scale_in_below": 0.5}, "autoscaling.scale_in_below", "inverted or empty"),
    ({**GOOD, "cooldown_out": 0}, "autoscaling.cooldown_out", "must be from 1"),
    ({**GOOD, "cooldown_in": 0}, "autoscaling.cooldown_in", "must be from 1"),
    ({**GOOD, "cooldown_in": -5}, "autoscaling.cooldown_in", "must be from 1"),
    ({**GOOD, "scale_out_above": 80}, "autoscaling.scale_out_above", "did you mean 0.8?"),
    ({**GOOD, "scale_out_above": True}, "autoscaling.scale_out_above", "expected a fraction"),
    ({**GOOD, "max_step": 0}, "autoscaling.max_step", "must be from 1"),
    ({**GOOD, "interval": 30, "window": 10}, "autoscaling.window", "must be from 30"),
    ({**GOOD, "idle_before_removal": "10m"}, "autoscaling.idle_before_removal", "expected a whole number"),
    ({"enabled": True, "max": 3}, "autoscaling.min", "required when the scaler is enabled"),
    ({**GOOD, "max": 0, "min": 0}, "autoscaling.max", "at least 1"),
    ({**GOOD, "scale_up_above": 0.9}, "autoscaling.scale_up_above", "unknown key"),
    ({**GOOD, "enabled": "yes"}, "autoscaling.enabled", "expected true or false"),
    ({**GOOD, "endpoint": "https://as.example/v1"}, "autoscaling.endpoint", "must end in /autoscaling-api/v1/"),
    ({**GOOD, "group": "a b"}, "autoscaling.group", "an AS group name"),
]


@pytest.mark.parametrize(("section", "field", "message"), BAD, ids=[b[1] + ":" + b[2][:20] for b in BAD])
def test_a_policy_that_makes_no_sense_is_one_line_naming_the_field(section: dict[str, Any], field: str,
                                                                      message: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        validate(master(section))
    assert raised.value.path == field and message in raised.value.message
    assert "\n" not in str(raised.value)


def test_only_masters_carry_a_policy() -> None:
    agent = master(GOOD)
    agent["role"] = "agent"
    with pytest.raises(InvalidInput, match="only a master's user-data"):
        validate(agent)


def cluster(autoscaling: Any, agents: dict[str, int] | None = None) -> dict[str, Any]:
    document = cluster_document(autoscaling=autoscaling)
    if agents is not None:
        document["agents"] = agents
    return document


def test_the_cluster_file_passes_the_policy_to_the_masters_only(tmp_path: Path) -> None:
    parsed = config.parse(cluster({"enabled": True}, {"min": 1, "max": 8, "desired": 2}), tmp_path / "c.yaml")
    masters = parsed.user_data("master", "x" * 43)
    assert masters["autoscaling"] == {"enabled": True, "min": 1, "max": 8}  # the group's limits by default
    assert "autoscaling" not in parsed.user_data("agent", "x" * 43)
    assert validate(masters).autoscaling.max == 8
    assert config.parse(cluster_document(), tmp_path / "c.yaml").autoscaling is None


@pytest.mark.parametrize(("section", "message"), [
    ({"enabled": True, "max": 12}, "autoscaling.max: 12 is outside agents.min..agents.max (1..8)"),
    ({"enabled": True, "min": 0}, "autoscaling.min: 0 is outside agents.min..agents.max (1..8)"),
    ({"enabled": True, "min": 6, "max": 3}, "autoscaling.min: 6 is larger than autoscaling.max 3"),
    ({"enabled": True, "scale_in_below": 0.9}, "autoscaling.scale_in_below: 0.9 must be below scale_out_above 0.8"),
    ({"enabled": True, "cooldown_out": 0}, "autoscaling.cooldown_out: must be from 1"),
    (["enabled"], "autoscaling: expected a mapping, got a list"),
])
def test_the_cluster_file_refuses_before_anything_is_built(tmp_path: Path, section: Any, message: str) -> None:
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps(cluster(copy.deepcopy(section), {"min": 1, "max": 8, "desired": 2})))
    with pytest.raises(InputError) as raised:
        config.load(path)
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_the_commented_example_policy_is_valid_when_uncommented(tmp_path: Path) -> None:
    example = (Path(__file__).resolve().parents[1] / "provision_min" / "examples" / "cluster.yaml").read_text()
    lines, inside = [], False
    for line in example.splitlines():
        if line.startswith("# autoscaling:"):
            inside = True
        elif inside and not line.startswith("#   "):
            inside = False
        lines.append(line[2:].split("  #")[0] if inside else line)
    path = tmp_path / "cluster.yaml"
    path.write_text("\n".join(lines) + "\n")
    parsed = config.load(path)
    assert parsed.autoscaling is not None and parsed.autoscaling["enabled"] is True
    policy = validate(parsed.user_data("master", "x" * 43)).autoscaling
    assert policy.enabled and (policy.min, policy.max, policy.cooldown_in) == (1, 10, 600)


@pytest.mark.parametrize(("section", "message"), [
    ({"enabled": True, "min": 6, "max": 3}, "autoscaling.min: 6 is larger than autoscaling.max 3"),
    ({"enabled": True, "scale_out_above": 0.4, "scale_in_below": 0.6}, "autoscaling.scale_in_below: 0.6 must be "
     "below scale_out_above 0.4 (an inverted or empty band)"),
    ({"enabled": True, "cooldown_in": 0}, "autoscaling.cooldown_in: must be from 1 to 86400, got 0"),
])
def test_provision_min_refuses_a_nonsense_policy_before_anything_changes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        section: dict[str, Any], message: str) -> None:
    env = Env(tmp_path, capsys, monkeypatch)
    path = env.write_cluster(cluster(section, {"min": 1, "max": 8, "desired": 2}))
    before = set(env.root.rglob("*"))
    for command in (["plan", "--offline"], ["up"], ["scale", "3"]):
        result = env.run(*command)
        assert result.code == 2 and result.out == "", (command, result.err)
        assert result.error_line().startswith(f"provision-min: {path}: {message}")
    assert set(env.root.rglob("*")) == before
