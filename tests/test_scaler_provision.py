"""The provisioner's side of the scaler: ``up`` names the AS API and the agents' group in the masters'
``autoscaling`` (OTC: the catalog's AS endpoint; local: the AS service), only when the cluster file enables it;
``status`` on both clouds shows who leads, a hold after a manual scale and the last decisions with reasons."""

from __future__ import annotations

import json
import time
from pathlib import Path

from bootstrap_agent.plan.cluster_status import status_document
from bootstrap_agent.scaler.decide import History
from bootstrap_agent.scaler.report import summary
from bootstrap_agent.scaler.state import ScalerState
from bootstrap_agent.schema import validate
from provision_min import config as cluster_config
from provision_min import scaler_status
from provision_min.local.layout import CloudState
from provision_min.local.metadata_host import user_data
from provision_min.node_readiness import assess
from provision_min.status import render
from provision_min.status_client import StatusAnswer
from provision_min.up import documents
from tests.support.provision_env import cluster_document

OTC_AS = "https://as.eu-de.otc.t-systems.com/autoscaling-api/v1/0123456789abcdef0123456789abcdef"
NOW = 1_800_000_000.0


def parsed(**autoscaling: object) -> cluster_config.ClusterConfig:
    document = cluster_document(autoscaling=autoscaling or None)
    return cluster_config.parse(document, Path("/nonexistent/cluster.yaml"), env={})


def test_up_names_the_as_api_and_the_group_in_the_masters_policy_only_when_enabled() -> None:
    config = parsed(enabled=True, cooldown_in=900)
    docs = documents(config, "s" * 43, None, OTC_AS)
    policy = docs["master"]["autoscaling"]
    assert policy["endpoint"] == OTC_AS and policy["group"] == f"{config.cluster}-agents"
    assert (policy["min"], policy["max"], policy["cooldown_in"]) == (config.agents.min, config.agents.max, 900)
    assert "autoscaling" not in docs["agent"]
    settings = validate(docs["master"]).autoscaling
    assert settings.enabled and settings.endpoint == OTC_AS and settings.group == f"{config.cluster}-agents"

    off = documents(parsed(enabled=False), "s" * 43, None, OTC_AS)["master"]["autoscaling"]
    assert "endpoint" not in off and "group" not in off
    assert "autoscaling" not in documents(parsed(), "s" * 43, None, OTC_AS)["master"]


def test_the_local_cloud_names_its_as_service() -> None:
    config = parsed(enabled=True)
    state = CloudState(cluster=config.cluster, subnet="10.231.252.0/24", image="/nonexistent", image_digest="x",
                       secret="s" * 43)
    policy = user_data(config, state, "master")["autoscaling"]
    assert policy["endpoint"] == state.as_url == "http://10.231.252.2:8180/autoscaling-api/v1/local"
    assert policy["group"] == f"{config.cluster}-agents"


def held_state() -> ScalerState:
    state = ScalerState()
    state.history = History(last_set=3, manual_at=NOW - 60)
    state.decisions = [
        {"at": NOW - 120, "action": "out", "reason": "scale_out",
         "detail": "allocation 91% is above 80%: desired 2 → 3", "desired": 3,
         "signals": {"allocation": 0.91, "desired": 2, "ready": 2}},
        {"at": NOW - 60, "action": "none", "reason": "manual_scale", "detail": "desired is 5, the scaler set 3",
         "desired": 5, "signals": {"allocation": 0.5, "desired": 5, "ready": 3}},
    ]
    return state


def test_status_shows_the_leader_the_hold_and_the_decisions_from_the_masters_status_document() -> None:
    shown = summary(held_state(), "c-master-1 (192.168.0.10)", NOW, hold=600)
    document = status_document("c", [], NOW, scaler=shown)
    readiness = assess(StatusAnswer(json.loads(document), 1.0), 0, 0)
    assert readiness.scaler is not None and readiness.scaler["leader"] == "c-master-1 (192.168.0.10)"
    nodes = {"complete": True, "members": [], "problems": [], "scaler": readiness.scaler}
    result = {"cluster": "c", "region": "eu-de", "availability_zone": "eu-de-02", "complete": True,
              "vpc": {"name": "c-vpc", "status": "OK"}, "subnet": {"name": "c-subnet", "status": "ACTIVE"},
              "security_groups": [], "masters": [], "eip": {"name": "c-eip", "status": "missing"},
              "as_configuration": {"name": "c-agents", "status": "present"},
              "as_group": {"name": "c-agents", "status": "missing"}, "instances": [], "nodes": nodes}
    text = render(result)
    until = NOW - 60 + 600
    assert "scaler: leader c-master-1 (192.168.0.10), desired last set 3" in text
    assert f"scaler: held off until {time.strftime('%H:%M', time.gmtime(until))} UTC: manual scale seen" in text
    assert "out scale_out: allocation 91% is above 80%: desired 2 → 3 [allocation 91%, desired 2, ready 2]" in text
    assert "none manual_scale: desired is 5, the scaler set 3" in text

    assert scaler_status.render(None) == []
    unreadable = scaler_status.render({"error": "ZooKeeper unreachable"})
    assert unreadable == ["  scaler: cannot be read: ZooKeeper unreachable"]
