"""The master's maintenance primitives (schedule, machine modes), as apache/mesos 1.11.0 has them. Pure.

Rules (``bootstrap_agent/data/names/STARTUP-RULES.md``, "Mesos behaviour", MB4-MB6):

* A machine in the schedule stays offerable until it is ``DOWN``; its offers carry the window as
  ``unavailability`` (``Master::offer``; the hierarchical allocator does not skip it).

* A posted schedule replaces the whole schedule; every machine in it becomes ``DRAINING`` unless it is already
  ``DOWN``; machines left out go back to ``UP``; a ``DOWN`` machine may not be left out
  (``Master::Http::__updateMaintenanceSchedule``, ``src/master/http.cpp``; ``validation::schedule``,
  ``src/master/maintenance.cpp``, which also gives the messages for empty windows, bad ids, duplicates and a
  negative duration).
* ``machine/down`` needs every machine to be in the schedule and ``DRAINING`` (``_startMaintenance``);
  ``machine/up`` needs them ``DOWN`` and takes them out of the schedule (``_stopMaintenance``).
* Machines match on the exact (hostname, ip) pair (``MachineID`` equality, ``include/mesos/type_utils.hpp``).
* JSON → protobuf conversion errors use stout's wording (``3rdparty/stout/include/stout/protobuf.hpp``); the
  stand-in checks only the fields it reads.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from standins.mesos_model import machine_text

Machine = tuple[str, str]  # (hostname, ip)


class MaintenanceError(ValueError):
    """A request the real master answers with 400 Bad Request; the message is the body."""


@dataclass
class Window:
    machines: list[Machine]
    start_ns: int
    duration_ns: int | None

    def to_json(self) -> dict[str, Any]:
        unavailability: dict[str, Any] = {"start": {"nanoseconds": self.start_ns}}
        if self.duration_ns is not None:
            unavailability["duration"] = {"nanoseconds": self.duration_ns}
        return {"machine_ids": [_id_json(m) for m in self.machines], "unavailability": unavailability}


def _id_json(machine: Machine) -> dict[str, str]:
    return {k: v for k, v in (("hostname", machine[0]), ("ip", machine[1])) if v}


def parse_machine(item: Any) -> Machine:
    if not isinstance(item, dict):
        raise MaintenanceError("Expecting a JSON object for a MachineID")
    hostname, ip = item.get("hostname", ""), item.get("ip", "")
    if not isinstance(hostname, str) or not isinstance(ip, str):
        raise MaintenanceError("Not expecting a JSON non-string for field 'hostname' or 'ip'")
    if not hostname and not ip:
        raise MaintenanceError("Both 'hostname' and 'ip' for a machine are empty")
    if ip:
        try:
            ipaddress.IPv4Address(ip)
        except ValueError:
            raise MaintenanceError(f"Failed to parse IPv4: {ip}") from None  # stout ip.hpp
    return (hostname, ip)


def parse_machines(items: Any) -> list[Machine]:
    """``validation::machines``: a non-empty list of valid, unique ids."""
    if not isinstance(items, list):
        raise MaintenanceError("Expecting a JSON array of MachineIDs")
    if not items:
        raise MaintenanceError("List of machines is empty")
    seen: list[Machine] = []
    for item in items:
        machine = parse_machine(item)
        if machine in seen:
            raise MaintenanceError(f"Machine '{machine_text(*machine)}' appears more than once in the schedule")
        seen.append(machine)
    return seen


def _nanoseconds(value: Any, what: str) -> int:
    if not isinstance(value, dict) or "nanoseconds" not in value:
        raise MaintenanceError(f"Missing required fields: {what}.nanoseconds")
    number = value["nanoseconds"]
    if isinstance(number, str) and number.lstrip("-").isdigit():
        number = int(number)  # int64 fields may be given as strings in proto3 JSON
    if not isinstance(number, int) or isinstance(number, bool):
        raise MaintenanceError(f"Not expecting a JSON non-number for field 'nanoseconds' of {what}")
    return number


def parse_schedule(body: Any) -> list[Window]:
    """A ``maintenance::Schedule`` JSON object → windows, with ``validation::schedule``'s per-window checks."""
    if not isinstance(body, dict):
        raise MaintenanceError("Expecting a JSON object for the maintenance schedule")
    windows_json = body.get("windows", [])
    if not isinstance(windows_json, list):
        raise MaintenanceError("Not expecting a JSON non-array for field 'windows'")
    windows: list[Window] = []
    seen: set[Machine] = set()
    for item in windows_json:
        if not isinstance(item, dict):
            raise MaintenanceError("Expecting a JSON object for a maintenance window")
        if "unavailability" not in item:
            raise MaintenanceError("Missing required fields: windows[].unavailability")
        ids = item.get("machine_ids", [])
        if not isinstance(ids, list) or not ids:
            raise MaintenanceError("List of machines in the maintenance window is empty")
        unavailability = item["unavailability"]
        if not isinstance(unavailability, dict):
            raise MaintenanceError("Expecting a JSON object for field 'unavailability'")
        start = _nanoseconds(unavailability.get("start"), "unavailability.start")
        duration = None
        if "duration" in unavailability:
            duration = _nanoseconds(unavailability["duration"], "unavailability.duration")
            if duration < 0:
                raise MaintenanceError("Unavailability 'duration' is negative")
        machines = []
        for raw in ids:
            machine = parse_machine(raw)
            if machine in seen:
                raise MaintenanceError(f"Machine '{machine_text(*machine)}' appears more than once in the schedule")
            seen.add(machine)
            machines.append(machine)
        windows.append(Window(machines, start, duration))
    return windows


@dataclass
class Maintenance:
    """The schedule and each scheduled machine's mode (``UP`` machines are not tracked, as in the master)."""

    windows: list[Window] = field(default_factory=list)
    modes: dict[Machine, str] = field(default_factory=dict)

    def schedule_json(self) -> dict[str, Any]:
        return {"windows": [w.to_json() for w in self.windows]} if self.windows else {}

    def update(self, windows: list[Window]) -> None:
        updated = {m for w in windows for m in w.machines}
        for machine, mode in self.modes.items():
            if mode == "DOWN" and machine not in updated:
                raise MaintenanceError(
                    f"Machine '{machine_text(*machine)}' is deactivated and cannot be removed from the schedule")
        self.modes = {m: ("DOWN" if self.modes.get(m) == "DOWN" else "DRAINING") for m in updated}
        self.windows = windows

    def window_of(self, machine: Machine) -> Window | None:
        return next((w for w in self.windows if machine in w.machines), None)

    def unavailability(self, machine: Machine) -> dict[str, Any] | None:
        """The machine's ``Unavailability`` while it is in the schedule, before and after the window's start:
        the real master copies it into every offer of the machine (``Master::offer``, ``src/master/master.cpp``)."""
        window = self.window_of(machine)
        return None if window is None else window.to_json()["unavailability"]

    def mode(self, machine: Machine) -> str:
        return self.modes.get(machine, "UP")

    def check_down(self, machines: list[Machine]) -> None:
        for machine in machines:
            if machine not in self.modes:
                raise MaintenanceError(f"Machine '{machine_text(*machine)}' is not part of a maintenance schedule")
            if self.modes[machine] != "DRAINING":
                raise MaintenanceError(
                    f"Machine '{machine_text(*machine)}' is not in DRAINING mode and cannot be brought down")

    def down(self, machines: list[Machine]) -> None:
        self.check_down(machines)
        for machine in machines:
            self.modes[machine] = "DOWN"

    def up(self, machines: list[Machine]) -> None:
        for machine in machines:
            if machine not in self.modes:
                raise MaintenanceError(f"Machine '{machine_text(*machine)}' is not part of a maintenance schedule")
            if self.modes[machine] != "DOWN":
                raise MaintenanceError(
                    f"Machine '{machine_text(*machine)}' is not in DOWN mode and cannot be brought up")
        for machine in machines:
            del self.modes[machine]
        for window in self.windows:
            window.machines = [m for m in window.machines if m not in machines]
        self.windows = [w for w in self.windows if w.machines]

    def status_json(self) -> dict[str, Any]:
        """``maintenance::ClusterStatus``: draining machines (no inverse-offer statuses) and down machines."""
        status: dict[str, Any] = {}
        draining = [{"id": _id_json(m)} for m, mode in sorted(self.modes.items()) if mode == "DRAINING"]
        down = [_id_json(m) for m, mode in sorted(self.modes.items()) if mode == "DOWN"]
        if draining:
            status["draining_machines"] = draining
        if down:
            status["down_machines"] = down
        return status

    def to_json(self) -> dict[str, Any]:
        return {"schedule": self.schedule_json(), "modes": [[m[0], m[1], mode] for m, mode in self.modes.items()]}

    @classmethod
    def from_json(cls, data: Any) -> Maintenance:
        windows = parse_schedule(data.get("schedule", {}))
        return cls(windows, {(h, i): mode for h, i, mode in data.get("modes", [])})
