"""Apply a plan: install its files, then touch each unit at most once, in plan order.

A unit is started if it is not running, restarted (or reloaded) if the digest of its inputs differs from the
one it was last started with, adopted (enabled, left running) if it runs but the agent never started it, and
left alone otherwise. A file that fails its check keeps the old one and blocks only the units that read it.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from enum import StrEnum
from typing import Any

from bootstrap_agent.desired import DesiredService, Plan
from bootstrap_agent.install import install
from bootstrap_agent.layout import Layout
from bootstrap_agent.readiness import unit_states, wait_ready
from bootstrap_agent.services.base import ServiceError, ServiceManager, child_pids, wait_gone
from bootstrap_agent.state import State
from bootstrap_agent.status import Outcome


class Action(StrEnum):
    """What a pass does to a unit. The values are the operators' API: each is logged as ``unit_<value>``
    (``unit_started``, ...) and as the ``action`` of ``unit_action_failed``."""

    STARTED = "started"
    RESTARTED = "restarted"
    RELOADED = "reloaded"
    ADOPTED = "adopted"  # running, but not started by the agent: enabled so that it comes back after a reboot
    REMOVED = "removed"  # no longer in the plan: stopped and disabled


RestartGuard = Callable[[], AbstractContextManager[bool]]
RELOAD_TIMEOUT = 5.0  # seconds a reload may take to retire the old workers (a kept-alive browser delays one)


def apply(
    desired: Plan, layout: Layout, manager: ServiceManager, state: State, start_timeout: float, log: Any,
    restart_guard: RestartGuard | None = None,
) -> Outcome:
    """Install the files, then touch each unit at most once, in plan order; wait until the role is up.

    Restarts of running units happen inside ``restart_guard`` (the daemon passes the cluster-wide restart
    lock, so agents restart one at a time); when the guard is not granted they are left for the next pass.
    """
    result = install(desired.files, layout)
    for path in result.changed:
        log.info("file_installed", path=path)
    for path, reason in result.failed.items():
        log.error("file_install_failed", path=path, error=reason)
    if any(p.startswith("/etc/systemd/") for p in result.changed):
        manager.daemon_reload()

    recorded = state.units()
    # Units the plan no longer has go first: a RAM disk turned off must be unmounted (systemd stops the units
    # that require it) before those units are started again on the plain folder.
    _remove_units(desired, recorded, layout, manager, log)
    failures: dict[str, str] = {}
    actions: list[tuple[DesiredService, Action, str]] = []  # (service, action, digest)
    # Every unit's state in one question where the manager can (systemd: one ``systemctl show``, not one per
    # unit): an idle pass of a master asked once per unit, which was most of its cost on a loaded node.
    known = unit_states(manager, [s.unit for s in desired.services])
    for service in desired.services:
        blocked = [p for p in service.inputs if p in result.failed]
        if blocked:
            failures[service.unit] = f"input not installed: {', '.join(blocked)}"
            continue
        digest = desired.inputs_digest(service)
        previous = recorded.get(service.unit, {}).get("digest")
        running = known[service.unit][0] if service.unit in known else manager.is_active(service.unit)
        if not running:
            actions.append((service, Action.STARTED, digest))
        elif previous != digest:
            actions.append((service, Action.RELOADED if service.reload else Action.RESTARTED, digest))
        elif previous is None:
            actions.append((service, Action.ADOPTED, digest))

    # Started although an earlier pass had started it: it stopped or crashed since (counted as a restart).
    recovered = {s.unit for s, a, _ in actions if a is Action.STARTED and recorded.get(s.unit, {}).get("digest")}
    done: dict[str, str] = {}

    def run(todo: list[tuple[DesiredService, Action, str]]) -> None:
        together = _start_together(todo, manager, state)
        for service, action, digest in todo:
            try:
                if not together and action is Action.STARTED and service.first_start and state.first_start_pending(
                        service.first_start):
                    # Once per instance, before the unit's very first start: the Alluxio master's journal
                    # format (never again: a re-format wipes the namespace).
                    manager.run_oneshot(service.first_start, service)
                    state.first_start_done(service.first_start)
                    log.info("first_start_ran", unit=service.unit, oneshot=service.first_start)
                if not together:  # else enabled and started already, all in one go
                    _act(manager, service, action)
            except ServiceError as exc:
                failures[service.unit] = str(exc)
                log.error("unit_action_failed", unit=service.unit, action=action.value, error=str(exc))
                continue
            recorded[service.unit] = {"digest": digest}
            if service.unit_file:
                recorded[service.unit]["unit_file"] = service.unit_file
            log.info(f"unit_{action.value}", unit=service.unit)
            done[service.unit] = "recovered" if service.unit in recovered else action.value

    restarts = [a for a in actions if a[1] is Action.RESTARTED]
    run([a for a in actions if a[1] is not Action.RESTARTED])
    deferred: list[str] = []
    if restarts and restart_guard is not None:
        with restart_guard() as granted:
            if granted:
                run(restarts)
                wait_ready([a[0] for a in restarts], manager, start_timeout)  # back up before the lock goes
            else:
                deferred = [a[0].unit for a in restarts]
                log.warning("restart_deferred", units=deferred)
    else:
        run(restarts)

    state.save_units(recorded)

    waiting = time.monotonic()
    services = wait_ready(desired.services, manager, start_timeout, skip=set(failures))
    waited = round(time.monotonic() - waiting, 3)
    for unit, reason in failures.items():
        services[unit] = f"failed: {reason}"
    failed = sorted(u for u, s in services.items() if s != "active")
    if failed or result.failed:
        reason = "; ".join([f"{u}: {services[u]}" for u in failed] + [f"{p}: {r}" for p, r in result.failed.items()])
        log.error("node_failed", failed=failed, reason=reason, waited_s=waited)
        return Outcome(1, "failed", reason, services, done)
    if deferred:
        return Outcome(0, "degraded", f"restart of {', '.join(deferred)} waits for the cluster's restart lock",
                       services, done)
    log.info("node_ready", services=sorted(services), waited_s=waited)
    return Outcome(0, "ready", "", services, done)


def _remove_units(
    desired: Plan, recorded: dict[str, Any], layout: Layout, manager: ServiceManager, log: Any
) -> None:
    """Stop and disable the units of an earlier pass that the plan no longer has; delete the unit files the
    agent rendered for them (mounts), so nothing pulls them in again at the next boot."""
    wanted = {s.unit for s in desired.services}
    reload_needed = False
    for unit in sorted(set(recorded) - wanted):
        try:
            manager.stop(unit)
            manager.disable(unit)
        except ServiceError as exc:
            log.error("unit_action_failed", unit=unit, action=Action.REMOVED.value, error=str(exc))
            continue
        unit_file = recorded[unit].get("unit_file") if isinstance(recorded[unit], dict) else None
        if isinstance(unit_file, str) and unit_file.startswith("/etc/systemd/"):
            for path in (unit_file, unit_file + ".bak"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(layout.path(path))
            reload_needed = True
        log.info("unit_removed", unit=unit)
        del recorded[unit]
    if reload_needed:
        manager.daemon_reload()


def _start_together(todo: list[tuple[DesiredService, Action, str]], manager: ServiceManager, state: State) -> bool:
    """A first boot's starts in one go, when the manager can (systemd) and every action is a plain start: one
    ``systemctl start`` enqueues all the jobs in plan order and systemd runs them side by side, each still
    after what its unit is ordered After= (issue 17: one by one, each start waited for the previous unit's
    exec, ~0.1 s a unit on a small node). True when all are enabled and started; on any failure False, and
    the caller starts them one by one as always, so each failed unit is reported with its own reason."""
    start_all = getattr(manager, "start_all", None)
    if start_all is None or len(todo) < 2 or any(
            action is not Action.STARTED or (service.first_start and state.first_start_pending(service.first_start))
            for service, action, _ in todo):
        return False
    try:
        for service, _, _ in todo:
            manager.enable(service)
        start_all([service for service, _, _ in todo])
    except ServiceError:
        return False
    return True


def _act(manager: ServiceManager, service: DesiredService, action: Action) -> None:
    if action is Action.STARTED:
        manager.enable(service)
        manager.start(service)
    elif action is Action.RELOADED:
        old_workers = child_pids(manager.main_pid(service.unit))
        manager.reload(service)
        wait_gone(old_workers, RELOAD_TIMEOUT)  # idle old workers exit at once; busy ones finish their requests
    elif action is Action.RESTARTED:
        manager.restart(service)
    elif action is Action.ADOPTED:  # running, but not started by us; make sure it comes back after a reboot
        manager.enable(service)
    else:  # removal is _remove_units' job: it has no DesiredService to act on
        raise ValueError(f"{action} is not an action on a planned unit")
