"""``up`` on a changed cluster file, on the local cloud: the masters' part of ``provision_min.rollout``.

Each master remembers what it was made from (``NodeRecord.image`` and ``user_data_sha256``, recorded when
``group.launch`` published its user-data; the metadata service keeps serving that user-data while it lives, as
OTC keeps a server's). When the masters' user-data or the node image now differs, ``up`` replaces them as
``rollout_run.roll_masters`` does on OTC, with the same plan (``rollout.plan_masters``): one at a time, the
first master (the dashboard's address) last, each only while every master is a ready member (the others then
keep ZooKeeper's, the Mesos replicated log's and the Alluxio journal's quorum while it is away), and the next
only once its successor is ready and the old instance has left ZooKeeper.

A replacement is a new instance: powered off cleanly first (``machine.stop``: its daemon leaves ZooKeeper before
its services stop, the managed units being ordered before it), its disk and metadata answers removed, then a new
uuid and a fresh disk from the image at the same name, index and address, so the ZooKeeper ensemble (its
``myid`` is its position in ``masters``) stays as it is; the new ZooKeeper, Alluxio journal and Mesos master
catch up from the other two (docs/node-agent.md, "Replacing one master of three"). The state is saved before
the new instance boots, so ``down`` finds it whatever happens next.
"""

from __future__ import annotations

import time
from typing import TextIO

from bootstrap_agent import logs
from provision_min.config import ClusterConfig
from provision_min.local import machine
from provision_min.local.group import launch, new_node
from provision_min.local.layout import CloudState, NodeRecord, Paths
from provision_min.local.metadata_host import unpublish, user_data
from provision_min.local.progress import Progress
from provision_min.local.readiness import wait_ready
from provision_min.rollout import MasterRollout, Spec, plan_masters


def made_from(node: NodeRecord) -> Spec:
    """What a master was made from; the local cloud has no flavors (an empty one is unknown, never a change)."""
    return Spec(node.image, "", None, node.user_data_sha256)


def plan_local_masters(config: ClusterConfig, state: CloudState) -> MasterRollout:
    """The masters to replace, in order, each with its changes (pure given the state: no I/O)."""
    want = Spec(state.image, "", user_data(config, state, "master"))
    masters = state.masters()
    return plan_masters({n.name: made_from(n) for n in masters}, want,
                        [n.name for n in sorted(masters, key=lambda n: n.index)])


def roll_local_masters(paths: Paths, config: ClusterConfig, state: CloudState, progress: Progress, out: TextIO,
                       timeout: float) -> int:
    """Replace every master made from other user-data or another image, one at a time; how many were replaced.
    ``timeout`` bounds each wait for the masters to be ready."""
    plan = plan_local_masters(config, state)
    if plan.blocked:
        print(f"provision-min: warning: masters not replaced: {plan.blocked}", file=out)
        return 0
    log = logs.get("provision-min")
    started = time.monotonic()
    for name, why in plan.order:
        wait_ready(paths, state, state.masters(), progress, timeout)  # the others keep the quorum while it is away
        old = next(n for n in state.masters() if n.name == name)
        print(f"masters: replacing {name} ({old.ip}: {'; '.join(why)}); the others keep the quorum", file=out)
        out.flush()
        began = time.monotonic()
        machine.stop(old.name, paths.node_dir(old.name))  # a clean poweroff: it leaves ZooKeeper first
        unpublish(paths, old)  # its answers and temporary keys go with it
        new = new_node(state, "master", old.index, old.ip)
        state.nodes[state.nodes.index(old)] = new
        paths.save(state)  # before it boots: down finds it from here on
        launch(paths, config, state, new)
        paths.save(state)  # with what it is made from
        wait_ready(paths, state, state.masters(), progress, timeout, gone=[old])
        seconds = time.monotonic() - began
        print(f"masters: {name} replaced in {seconds:.0f} s (instance {new.uuid}); every master ready", file=out)
        log.info("master_replaced", name=name, ip=old.ip, old=old.uuid, new=new.uuid, seconds=round(seconds, 1))
    if plan.order:
        print(f"masters: {len(plan.order)} replaced in {time.monotonic() - started:.0f} s", file=out)
    return len(plan.order)
