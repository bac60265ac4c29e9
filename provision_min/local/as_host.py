"""``provision-min``'s side of the local AS service: its process, the operator's client, and the group.

``up`` starts the service (``as_service``) on the bridge's host address after the metadata service, then
talks to it exactly as to OTC's AS API with the shared client (``bootstrap_agent.autoscaling``), signed with
the local operator's AK/SK kept in the 0600 state: it creates the agents' configuration (their user-data, the
node image), the group and its ``INSTANCE_TERMINATING`` hook, and resumes it. ``scale`` sets the desired
count. The service is found by its command line (not a recorded pid), so ``down`` stops it also after a crash.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import signal
import sys
import time
from pathlib import Path

from bootstrap_agent.autoscaling import AkSkAuth, AutoScaling, AutoScalingError, Group, Instance
from bootstrap_agent.otc_signing import SigningKey
from provision_min.config import ClusterConfig
from provision_min.errors import ProvisionError
from provision_min.lifecycle import hook_name, topic_name
from provision_min.local import machine
from provision_min.local.as_service import PORT, NspawnMachines
from provision_min.local.as_state import INSERVICE, AsState, new_access_key
from provision_min.local.background import start_and_wait
from provision_min.local.layout import CloudState, Paths
from provision_min.local.metadata_host import user_data
from provision_min.local.progress import Progress

AS_MODULE = "provision_min.local.as_service"
HOOK_TIMEOUT_ENV = "PROVISION_MIN_LOCAL_HOOK_TIMEOUT"  #: tests: a short hook timeout (OTC allows 300..86400)
TERMINATE_POLICY = "OLD_CONFIG_NEW_INSTANCE"  #: another configuration's instances first, then the newest


def endpoint(state: CloudState) -> str:
    return state.as_url


def group_name(cluster: str) -> str:
    return f"{cluster}-agents"


def ensure_operator_key(state: CloudState) -> bool:
    """The operator's AK/SK for the AS service (made once, kept in the 0600 state); True if made now."""
    if state.as_access_key and state.as_secret_key:
        return False
    state.as_access_key, state.as_secret_key = new_access_key()
    return True


def client(state: CloudState) -> AutoScaling:
    key = SigningKey(state.as_access_key, state.as_secret_key)
    return AutoScaling(state.as_endpoint or endpoint(state), AkSkAuth(lambda: key))


# -- the process -------------------------------------------------------------------------------------------
def service_pid(paths: Paths) -> int | None:
    """The cluster's running AS service, found by its command line."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            argv = machine.cmdline(int(entry.name))
            if AS_MODULE in argv and str(paths.root) in argv and machine.alive(int(entry.name)):
                return int(entry.name)
    return None


def hook_timeout(config: ClusterConfig) -> int:
    raw = os.environ.get(HOOK_TIMEOUT_ENV, "")
    return int(raw) if raw.isdigit() and int(raw) > 0 else config.drain.hook_timeout


def start_service(paths: Paths, state: CloudState, config: ClusterConfig, timeout: float = 15.0) -> None:
    state.as_endpoint = endpoint(state)
    paths.save(state)  # named before it runs: down looks for it by the state folder in its command line
    if service_pid(paths) is not None:
        return
    argv = [sys.executable, "-m", AS_MODULE, "--state-dir", str(paths.root), "--bind", state.host_ip,
            "--port", str(PORT), "--min-hook-timeout", str(min(300, hook_timeout(config)))]

    def record(pid: int) -> None:
        state.as_pid = pid
        paths.save(state)

    start_and_wait(argv, paths.as_log, "AS service", timeout, record)


def stop_service(paths: Paths, timeout: float = 10.0) -> bool:
    pid = service_pid(paths)
    if pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while machine.alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if machine.alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return True


# -- the group ---------------------------------------------------------------------------------------------
def ensure_group(config: ClusterConfig, state: CloudState, asc: AutoScaling, progress: Progress | None = None
                 ) -> Group:
    """The agents' group as OTC's ``up`` makes it: configuration, group, terminating hook, resumed."""
    name = group_name(config.cluster)
    try:
        group = asc.find_group(name)
        if group is None:
            document = user_data(config, state, "agent")
            encoded = json.dumps(document, sort_keys=True).encode()
            digest = hashlib.sha256(encoded + state.image.encode()).hexdigest()[:8]
            cid = asc.create_configuration(f"{name}-{digest}", {
                "flavorRef": config.agent_flavor, "imageRef": state.image, "key_name": config.key_name,
                "user_data": base64.b64encode(encoded).decode(), "metadata": {},
                "disk": [{"size": 40, "volume_type": "SSD", "disk_type": "SYS"}]})
            gid = asc.create_group({
                "scaling_group_name": name, "scaling_configuration_id": cid,
                "desire_instance_number": config.agents.desired, "min_instance_number": config.agents.min,
                "max_instance_number": config.agents.max, "available_zones": [config.availability_zone],
                "instance_terminate_policy": TERMINATE_POLICY, "networks": [{"id": "local"}]})
            group = asc.group(gid)
            if progress is not None:
                progress.say(f"AS group {name}: created (desired {group.desired}, service {asc.endpoint})")
        hook = hook_name(config.cluster)
        if not any(h.name == hook for h in asc.hooks(group.id)):
            asc.create_hook(group.id, hook, topic_urn=f"urn:smn:local:local:{topic_name(config.cluster)}",
                            default_timeout=hook_timeout(config))
        if group.status != "INSERVICE":
            asc.group_action(group.id, "resume")
        return asc.group(group.id)
    except AutoScalingError as exc:
        raise ProvisionError(f"the local AS service: {exc}") from None


def wait_settled(asc: AutoScaling, gid: str, timeout: float, progress: Progress | None = None) -> list[Instance]:
    """Until the group holds exactly its desired count, all ``INSERVICE`` (removals and their hooks done)."""
    deadline = time.monotonic() + timeout
    said = ""
    while True:
        try:
            group = asc.group(gid)
            instances = asc.instances(gid)
        except AutoScalingError as exc:
            raise ProvisionError(f"the local AS service: {exc}") from None
        if len(instances) == group.desired and all(i.state == INSERVICE for i in instances):
            return instances
        waiting = sorted(f"{i.name} {i.state}" for i in instances if i.state != INSERVICE)
        line = f"AS group: {len(instances)} instance(s), desired {group.desired}: " + (", ".join(waiting) or "-")
        if progress is not None and line != said:
            progress.say(line)
            said = line
        if time.monotonic() > deadline:
            raise ProvisionError(f"the AS group did not settle within {timeout:.0f} s: {line}")
        time.sleep(0.5)


def boot_again(paths: Paths, state: CloudState) -> int:
    """Boot the group's instances that are off (OTC's health check would replace them); how many."""
    group = AsState.load(paths.as_state_file)
    booted = 0
    machines = NspawnMachines(paths, state)
    for instance in group.instances:
        if instance.state == INSERVICE and machine.supervisor_pid(paths.node_dir(instance.name)) is None:
            config = group.configurations[instance.config_id]["instance_config"]
            machines.launch(instance, str(config["imageRef"]))
            booted += 1
    return booted
