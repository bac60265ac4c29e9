"""A new cluster's tree starts split: ``up`` puts the operator credential's digest id (``operator_acl_id``, never
the password) into the masters' user-data only, masked wherever it is printed; the schema refuses a malformed
id, and an agent's user-data with one."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from bootstrap_agent.errors import InvalidInput
from bootstrap_agent.schema import validate
from bootstrap_agent.zk import acls
from tests.support.fake_otc import FakeOtc
from tests.support.provision_env import Env
from tests.test_provision_credentials import env

EXAMPLES = Path(__file__).resolve().parents[1] / "bootstrap_agent" / "examples"


__all__ = ["env"]  # the fixture of test_provision_credentials: a cluster file without Alluxio


def test_up_names_the_operator_digest_in_the_masters_user_data_only(env: Env, cloud: FakeOtc) -> None:
    result = env.run("up")
    assert result.code == 0, result.err
    state = json.loads(env.state_file.read_text())
    operator_id = acls.operator_id(state["operator_secret"])
    roles = {name: document["role"] for name, document in cloud.user_data.items()}
    assert set(roles.values()) == {"master", "agent"}
    for name, document in cloud.user_data.items():
        assert document.get("operator_acl_id") == (operator_id if roles[name] == "master" else None), name
    assert state["operator_secret"] not in json.dumps(cloud.user_data)
    assert operator_id not in result.out + result.err

    planned = env.run("plan", "--offline", "--json")  # every call again, with this state file's values
    assert planned.code == 0, planned.err
    bodies = [json.loads(line)["body"] for line in planned.out.splitlines() if line.strip()]
    masked = [b["server"]["user_data"] for b in bodies if isinstance(b, dict) and "server" in b]
    assert masked and all(document["operator_acl_id"] == "***" for document in masked)
    secret_part = operator_id.split(":", 1)[1]
    assert secret_part not in planned.out + planned.err and state["operator_secret"] not in planned.out


def example(role: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((EXAMPLES / "agent.json").read_text())
    return {**copy.deepcopy(document), "role": role}


@pytest.mark.parametrize(("role", "value", "message"), [
    ("master", "bootstrap-operator:short=", "must be a ZooKeeper digest id"),
    ("master", "bootstrap-agent:" + "A" * 27 + "=", "must be a ZooKeeper digest id"),
    ("master", "bootstrap-operator:" + "A" * 27 + "=\n", "must be a ZooKeeper digest id"),
    ("master", 42, "must be a ZooKeeper digest id"),
    ("agent", "bootstrap-operator:" + "A" * 27 + "=", "only a master's user-data"),
])
def test_a_malformed_operator_acl_id_is_named(role: str, value: Any, message: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        validate({**example(role), "operator_acl_id": value})
    assert str(refused.value).startswith("operator_acl_id: ") and message in str(refused.value)
    assert "AAAA" not in str(refused.value)


def test_a_masters_operator_acl_id_is_kept_out_of_its_repr_and_masked() -> None:
    operator_id = acls.operator_id("operator-secret-for-tests-987654321")
    settings = validate({**example("master"), "operator_acl_id": operator_id})
    assert settings.operator_acl_id == operator_id and operator_id not in repr(settings)
    assert operator_id in settings.secrets()
    assert validate(example("master")).operator_acl_id is None  # optional: user-data without it as today


def test_the_local_cloud_names_the_operator_digest_in_the_masters_user_data_only() -> None:
    from provision_min import config as config_mod
    from provision_min.local import metadata_host
    from tests.test_local_cloud_parts import EXAMPLE, a_state

    config = config_mod.load(EXAMPLE)
    operator = "operator-secret-local-0123456789abcdef"
    state = a_state(cluster=config.cluster, operator_secret=operator)
    master = metadata_host.user_data(config, state, "master")
    assert master["operator_acl_id"] == acls.operator_id(operator) and operator not in json.dumps(master)
    assert "operator_acl_id" not in metadata_host.user_data(config, state, "agent")
    older = a_state(cluster=config.cluster)  # a cloud.json from before the operator credential: as before
    assert "operator_acl_id" not in metadata_host.user_data(config, older, "master")
