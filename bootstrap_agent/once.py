"""``bootstrap-agent once``: one full pass, then exit. The daemon runs the same steps in its loop.

The data flow is the order of the steps: inputs (``inputs.py``: metadata, user-data, facts), the pure
``plan()``, apply (``apply.py``: files, then each unit at most once), readiness (``readiness.py``) and the
report (``status.py``). Everything that can be refused (metadata, user-data, the plan for this very node) is
decided before ``commit_inputs`` writes the first byte, so bad input changes nothing.
"""

from __future__ import annotations

from typing import Any

from bootstrap_agent.apply import apply
from bootstrap_agent.conceal import concealment_problem
from bootstrap_agent.desired import Peers
from bootstrap_agent.errors import InvalidInput, SourceUnavailable
from bootstrap_agent.inputs import Options, commit_inputs, node_facts, read_inputs
from bootstrap_agent.layout import Layout
from bootstrap_agent.plan import plan
from bootstrap_agent.services import make_manager
from bootstrap_agent.state import State
from bootstrap_agent.status import Outcome, refused, save_status


def run_once(options: Options, log: Any) -> Outcome:
    """One pass without ZooKeeper (no peers): what a node can do on its own user-data alone."""
    layout = Layout(options.root)
    state = State(layout)
    try:
        inputs = read_inputs(options, state, log)
    except (InvalidInput, SourceUnavailable) as exc:
        return refused(exc, "inputs", log)
    settings = inputs.settings
    try:
        facts = node_facts(options, settings, inputs.meta, log)
        desired = plan(settings, facts, Peers(), layout)
    except (InvalidInput, SourceUnavailable) as exc:
        return refused(exc, "plan", log)
    log.info("plan_ready", cluster=settings.cluster, role=settings.role, ip=facts.ip, files=len(desired.files),
             services=[s.unit for s in desired.services], user_data_source=inputs.fetched.source)
    commit_inputs(state, inputs, facts, log)
    manager = make_manager(options.service_manager, layout)
    outcome = apply(desired, layout, manager, state, options.start_timeout, log)
    problem = concealment_problem(layout)
    if problem:  # the services run, but every uid can read the node's secrets: say so (exit code unchanged)
        log.error("metadata_not_concealed", reason=problem)
        state_name = "degraded" if outcome.state == "ready" else outcome.state
        outcome = Outcome(outcome.exit_code, state_name, "; ".join(filter(None, [outcome.reason, problem])),
                          outcome.services)
    save_status(state, settings, facts.ip, inputs.fetched.source, outcome, log)
    return outcome
