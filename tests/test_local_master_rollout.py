"""The local masters' rollout plan (``provision_min.local.master_rollout``): what each master was made from
against what the cluster file makes now, through the same ``rollout.plan_masters`` as on OTC. Pure: no
instance is started; the end-to-end proof is ``test_local_cloud_rollout.py``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from provision_min import config as config_mod
from provision_min.config import ClusterConfig
from provision_min.local.layout import CloudState, NodeRecord
from provision_min.local.master_rollout import plan_local_masters
from provision_min.local.metadata_host import user_data
from provision_min.rollout import digest

EXAMPLE = Path(config_mod.__file__).parent / "examples" / "cluster.yaml"


def cluster(masters: int = 3) -> tuple[ClusterConfig, CloudState]:
    config = dataclasses.replace(config_mod.load(EXAMPLE), masters=masters)
    state = CloudState(cluster=config.cluster, subnet="10.231.3.0/24", image="/var/cache/x/node-1",
                       image_digest="1", secret="s" * 43, operator_secret="o" * 43)
    made = digest(user_data(config, state, "master"))
    state.nodes = [NodeRecord(f"{config.cluster}-master-{i}", "master", i, f"10.231.3.{9 + i}", f"uuid-{i}", 1.0,
                              state.image, made) for i in range(1, masters + 1)]
    return config, state


def test_masters_made_from_what_the_cluster_file_makes_are_left_alone() -> None:
    config, state = cluster()
    assert plan_local_masters(config, state).order == ()


def test_a_changed_setting_replaces_every_master_the_first_last() -> None:
    config, state = cluster()
    changed = dataclasses.replace(config, mesos={**config.mesos, "attributes": {"az": "eu-de-03"}})
    plan = plan_local_masters(changed, state)
    assert plan.blocked is None
    assert plan.order == tuple((f"{config.cluster}-master-{i}", ("user-data",)) for i in (3, 2, 1))


def test_another_image_replaces_only_the_masters_made_from_the_old_one() -> None:
    config, state = cluster()
    state.nodes[1].image = "/var/cache/x/node-0"
    plan = plan_local_masters(config, state)
    assert plan.order == ((f"{config.cluster}-master-2", ("image_id /var/cache/x/node-0 -> /var/cache/x/node-1",)),)


def test_a_master_without_a_record_is_not_replaced_on_a_guess() -> None:
    config, state = cluster()
    for node in state.nodes:
        node.image, node.user_data_sha256 = "", None
    changed = dataclasses.replace(config, mesos={**config.mesos, "attributes": {"az": "eu-de-03"}})
    assert plan_local_masters(changed, state).order == ()


def test_a_single_master_is_not_replaced_and_the_plan_says_why() -> None:
    config, state = cluster(masters=1)
    changed = dataclasses.replace(config, mesos={**config.mesos, "attributes": {"az": "eu-de-03"}})
    plan = plan_local_masters(changed, state)
    assert plan.order == () and plan.blocked and "a single master cannot be replaced" in plan.blocked
