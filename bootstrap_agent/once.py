"""One full pass: fetch, validate, plan, install, start, report. ``bootstrap-agent once`` and the daemon's
reconcile step are this function.

Order matters for "bad input changes nothing": everything that can be refused (metadata, user-data, the plan
for this very node) is decided before the first byte is written. After that, each file is installed on its
own (a failed check keeps the old file and blocks only the units that read it), and each unit is touched at
most once: started if it is not running, restarted (or reloaded) if the digest of its inputs differs from the
one it was last started with, left alone otherwise.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from bootstrap_agent import DEFAULT_METADATA_URL, DEFAULT_USER_DATA_URL, logs, tls
from bootstrap_agent.clock import NOT_SYNCHRONIZED, clock_state, kernel_max_error_us
from bootstrap_agent.errors import InvalidInput, SourceUnavailable
from bootstrap_agent.facts import Facts, InstanceMeta, gather, with_credentials, with_tls
from bootstrap_agent.install import install
from bootstrap_agent.metadata import Fetched, Retry, fetch_meta_data, fetch_security_key, fetch_user_data
from bootstrap_agent.plan import DesiredService, Layout, Peers, Plan, plan
from bootstrap_agent.schema import Settings, decode_user_data, validate
from bootstrap_agent.services.base import (
    ServiceError,
    ServiceManager,
    bound_unix_sockets,
    child_pids,
    listening_ports,
    wait_gone,
)
from bootstrap_agent.state import State


@dataclass(frozen=True)
class Options:
    root: str = "/"
    user_data_url: str = DEFAULT_USER_DATA_URL
    metadata_url: str = DEFAULT_METADATA_URL
    service_manager: str = "systemd"
    start_timeout: float = 60.0
    retry: Retry = field(default_factory=Retry)
    ip: str | None = None  # the node's cluster address, when it has several


@dataclass
class Outcome:
    exit_code: int
    state: str  # "ready", "degraded" (the daemon: up, with a reason), "failed" or "invalid"
    reason: str = ""
    services: dict[str, str] = field(default_factory=dict)


def make_manager(name: str, layout: Layout) -> ServiceManager:
    if name == "process":
        from bootstrap_agent.services.process import ProcessManager

        return ProcessManager(layout)
    from bootstrap_agent.services.systemd import SystemdManager

    return SystemdManager()


@dataclass(frozen=True)
class Inputs:
    """Everything a pass reads from outside, fetched and validated before anything is written."""

    meta: InstanceMeta
    meta_raw: dict[str, Any]
    fetched: Fetched
    document: Any  # the decoded user-data, to which run-time overrides apply
    settings: Settings


def read_inputs(options: Options, state: State, log: Any) -> Inputs:
    """Metadata and user-data, each from the first source that answers; raises, never writes."""
    meta, meta_raw = _instance_meta(options, state, log)
    fetched = _user_data(options, state, meta, log)
    document = decode_user_data(fetched.body)
    settings = validate(document)
    logs.register_secrets(*settings.secrets(), source="user-data")
    return Inputs(meta, meta_raw, fetched, document, settings)


def node_facts(options: Options, settings: Settings, meta: InstanceMeta, log: Any) -> Facts:
    """This machine's facts, plus the agency's temporary keys when the cluster uses them, plus a master's
    own dashboard certificate when the user-data brings none."""
    facts = gather(meta, preferred_ips=settings.masters, ip=options.ip)
    if settings.role == "master" and not settings.dashboard.tls_certificate:
        state = State(Layout(options.root))
        first_boot = state.is_first_boot(meta.uuid)  # another instance's pair is not ours
        pair = None if first_boot else tls.load(state.dir / "tls")
        facts = with_tls(facts, pair or tls.generate(f"{settings.cluster}-dashboard", facts.ip))
    if settings.credentials and settings.credentials.source == "agency" and settings.alluxio:
        keys = fetch_security_key(options.metadata_url, options.retry)
        logs.register_secrets(keys.secret, keys.token, source="agency")
        facts = with_credentials(facts, keys)
    return facts


def commit_inputs(state: State, inputs: Inputs, facts: Facts, log: Any) -> None:
    """The first writes of a pass: forget another instance's state, keep the good inputs for next time."""
    if state.is_first_boot(inputs.meta.uuid):
        log.info("first_boot", instance_uuid=inputs.meta.uuid, previous=state.instance_uuid())
        state.begin_instance(inputs.meta.uuid)
    state.save_meta_data(inputs.meta_raw)
    if inputs.fetched.source != "last-good":
        state.save_user_data(inputs.meta.uuid, inputs.fetched.body, inputs.fetched.source)
    if facts.tls:
        tls.save(state.dir / "tls", facts.tls)


def refused(exc: InvalidInput | SourceUnavailable, stage: str, log: Any) -> Outcome:
    """The outcome of a pass that stopped before writing anything, logged with a stable event name."""
    if isinstance(exc, InvalidInput):
        event = "user_data_invalid" if stage == "inputs" else "plan_invalid"
        log.error(event, field=exc.path, error=exc.message)
        prefix = "invalid user-data" if stage == "inputs" else "cannot configure this node"
        return Outcome(2, "invalid", f"{prefix}: {exc}")
    log.error("user_data_unavailable" if stage == "inputs" else "agency_credentials_unavailable", error=str(exc))
    return Outcome(1, "failed", str(exc))


def run_once(options: Options, log: Any) -> Outcome:
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
    save_status(state, settings, facts.ip, inputs.fetched.source, outcome, log)
    return outcome


def _instance_meta(options: Options, state: State, log: Any) -> tuple[InstanceMeta, dict[str, Any]]:
    try:
        raw = fetch_meta_data(options.metadata_url, options.retry)
    except SourceUnavailable as exc:
        stored = state.load_meta_data()
        if stored is None:
            raise
        log.warning("meta_data_from_last_good", error=str(exc))
        raw = stored
    try:
        return InstanceMeta.from_json(raw), raw
    except InvalidInput as exc:
        raise SourceUnavailable(f"instance metadata is unusable: {exc}") from None


def _user_data(options: Options, state: State, meta: InstanceMeta, log: Any) -> Fetched:
    fetched, errors = fetch_user_data(options.user_data_url, options.metadata_url, options.retry)
    for error in errors:
        log.warning("user_data_source_failed", error=error)
    if fetched is not None:
        log.info("user_data_fetched", source=fetched.source, url=fetched.url, bytes=len(fetched.body))
        return fetched
    stored = state.load_user_data()
    if stored is None or stored.instance_uuid != meta.uuid:
        raise SourceUnavailable("no user-data: " + "; ".join(errors) + "; and no last good copy for this instance")
    log.warning("user_data_from_last_good", saved_at=stored.saved_at)
    return Fetched(stored.body, "last-good")


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
    actions: list[tuple[DesiredService, str, str]] = []  # (service, action, digest)
    for service in desired.services:
        blocked = [p for p in service.inputs if p in result.failed]
        if blocked:
            failures[service.unit] = f"input not installed: {', '.join(blocked)}"
            continue
        digest = desired.inputs_digest(service)
        previous = recorded.get(service.unit, {}).get("digest")
        if not manager.is_active(service.unit):
            actions.append((service, "started", digest))
        elif previous != digest:
            actions.append((service, "reloaded" if service.reload else "restarted", digest))
        elif previous is None:
            actions.append((service, "adopted", digest))

    def run(todo: list[tuple[DesiredService, str, str]]) -> None:
        for service, action, digest in todo:
            try:
                if action == "started" and service.first_start and state.first_start_pending(service.first_start):
                    # Once per instance, before the unit's very first start: the Alluxio master's journal
                    # format (never again: a re-format wipes the namespace).
                    manager.run_oneshot(service.first_start, service)
                    state.first_start_done(service.first_start)
                    log.info("first_start_ran", unit=service.unit, oneshot=service.first_start)
                _act(manager, service, action)
            except ServiceError as exc:
                failures[service.unit] = str(exc)
                log.error("unit_action_failed", unit=service.unit, action=action, error=str(exc))
                continue
            recorded[service.unit] = {"digest": digest}
            if service.unit_file:
                recorded[service.unit]["unit_file"] = service.unit_file
            log.info(f"unit_{action}", unit=service.unit)

    restarts = [a for a in actions if a[1] == "restarted"]
    run([a for a in actions if a[1] != "restarted"])
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
        return Outcome(1, "failed", reason, services)
    if deferred:
        return Outcome(0, "degraded", f"restart of {', '.join(deferred)} waits for the cluster's restart lock",
                       services)
    log.info("node_ready", services=sorted(services), waited_s=waited)
    return Outcome(0, "ready", "", services)


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
            log.error("unit_action_failed", unit=unit, action="removed", error=str(exc))
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


def _act(manager: ServiceManager, service: DesiredService, action: str) -> None:
    if action == "started":
        manager.enable(service)
        manager.start(service)
    elif action == "reloaded":
        old_workers = child_pids(manager.main_pid(service.unit))
        manager.reload(service)
        wait_gone(old_workers, RELOAD_TIMEOUT)  # idle old workers exit at once; busy ones finish their requests
    elif action == "restarted":
        manager.restart(service)
    else:  # adopted: running, but not started by us; make sure it comes back after a reboot
        manager.enable(service)


def wait_ready(
    services: Sequence[DesiredService], manager: ServiceManager, timeout: float, skip: set[str] | None = None
) -> dict[str, str]:
    """unit -> "active", or "failed: <why>" for units whose own processes do not run and listen on all their
    ports within ``timeout``."""
    pending = [s for s in services if s.unit not in (skip or set())]
    status: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while pending:
        still = []
        for service in pending:
            missing = _ports_missing(service, manager)
            if missing is None:
                status[service.unit] = f"failed: {manager.failure_reason(service.unit)}"
            elif not missing:
                status[service.unit] = "active"
            elif time.monotonic() > deadline:
                status[service.unit] = f"failed: not listening on {', '.join(missing)} after {timeout:.0f} s"
            else:
                still.append(service)
        pending = still
        if pending:
            time.sleep(0.05)
    return status


def _ports_missing(service: DesiredService, manager: ServiceManager) -> list[str] | None:
    """The unit's ports and unix sockets its own processes do not hold yet; ``None`` when it is not running."""
    if not manager.is_active(service.unit):
        return None
    wanted = [f"{h}:{p}" for h, p in service.ports] + [f"unix:{path}" for path in service.sockets]
    pid = manager.main_pid(service.unit)
    if not pid:
        return wanted
    owned = listening_ports(pid, {p for _, p in service.ports})
    if owned is None:
        return None
    missing = [f"{h}:{p}" for h, p in service.ports if p not in owned]
    if service.sockets:
        bound = bound_unix_sockets(pid, set(service.sockets))
        if bound is None:
            return None
        missing += [f"unix:{path}" for path in service.sockets if path not in bound]
    return missing


def save_status(state: State, settings: Settings, ip: str, source: str, outcome: Outcome, log: Any = None) -> None:
    previous = state.status() or {}
    now = time.time()
    since = previous.get("since", now) if previous.get("state") == outcome.state else now
    clock = clock_state()  # reported, never a reason to be unready (see bootstrap_agent/clock.py)
    if log is not None and clock == NOT_SYNCHRONIZED and previous.get("clock") != clock:
        log.warning("clock_not_synchronized", max_error_us=kernel_max_error_us(),
                    hint="start a time sync daemon (systemd-timesyncd, chrony): OBS refuses a clock 15 min off")
    state.save_status({
        "state": outcome.state,
        "reason": outcome.reason,
        "cluster": settings.cluster,
        "role": settings.role,
        "ip": ip,
        "services": outcome.services,
        "user_data_source": source,
        "since": since,
        "updated": now,
        "clock": clock,
    })
