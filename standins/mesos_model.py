"""Small shared pieces of the Mesos stand-in's cluster model: durations, resources, machine ids.

Pure functions only. Shapes follow apache/mesos 1.11.0: resources in ``/state`` are a name → value object
(``src/common/http.cpp`` ``model(const Resources&)``: scalars as numbers, ranges as ``"[31000-32000]"``), in the
v1 APIs a list of ``Resource`` messages (``include/mesos/v1/mesos.proto``); a maintenance ``MachineID`` is
``{"hostname", "ip"}`` and is printed in error messages as compact JSON (``stringify(JSON::protobuf(id))``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any

Resources = dict[str, float]
TERMINAL_STATES = frozenset({"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR",
                             "TASK_DROPPED", "TASK_GONE", "TASK_GONE_BY_OPERATOR", "TASK_UNREACHABLE"})
SCALARS = ("cpus", "mem", "disk", "gpus")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ns|us|ms|secs|mins|hrs|days|weeks)\s*$")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "secs": 1.0, "mins": 60.0, "hrs": 3600.0, "days": 86400.0,
                 "weeks": 604800.0}


def parse_duration(flag: str, text: str) -> float:
    """stout ``Duration::parse`` (3rdparty/stout/include/stout/duration.hpp): a number and a unit, in seconds."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"Failed to load flag '{flag}': Failed to load value '{text}': "
                         "Invalid duration format (expecting a number and a unit)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def machine_resources(given: Mapping[str, float | str]) -> dict[str, float | str]:
    """The agent's total: ``--resources``, with cpus and mem taken from the machine when not given (the real
    agent's defaults, ``Containerizer::resources`` in ``src/slave/containerizer/containerizer.cpp``: all cpus,
    memory less 1 GiB, or half of it below 2 GiB). The stand-in adds no default disk or ports."""
    total: dict[str, float | str] = dict(given)
    total.setdefault("cpus", float(os.cpu_count() or 1))
    if "mem" not in total:
        try:
            mem_mb = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 1024 / 1024
        except (ValueError, OSError):
            mem_mb = 2048.0
        total["mem"] = float(int(mem_mb - 1024 if mem_mb >= 2048 else mem_mb / 2))
    return total


def state_resources(resources: Mapping[str, Any]) -> dict[str, Any]:
    """Resources as the master's JSON models them (``model(const Resources&)``, ``src/common/http.cpp``): cpus,
    gpus, mem and disk always present (0 when absent), then whatever else there is."""
    return {"cpus": 0.0, "gpus": 0.0, "mem": 0.0, "disk": 0.0, **resources}


def scalars(resources: Mapping[str, Any]) -> Resources:
    return {k: float(v) for k, v in resources.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def add(a: Mapping[str, float], b: Mapping[str, float]) -> Resources:
    out = dict(a)
    for k, v in b.items():
        out[k] = round(out.get(k, 0.0) + v, 6)
    return out


def subtract(a: Mapping[str, float], b: Mapping[str, float]) -> Resources:
    out = dict(a)
    for k, v in b.items():
        out[k] = round(max(out.get(k, 0.0) - v, 0.0), 6)
    return out


def contains(a: Mapping[str, float], b: Mapping[str, float]) -> bool:
    return all(a.get(k, 0.0) + 1e-9 >= v for k, v in b.items())


def to_v1(resources: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Name → value into v1 ``Resource`` messages (role ``*`` is implied in 1.11 and left out)."""
    out: list[dict[str, Any]] = []
    for name, value in sorted(resources.items()):
        if isinstance(value, int | float):
            out.append({"name": name, "type": "SCALAR", "scalar": {"value": float(value)}})
        elif isinstance(value, str) and value.startswith("["):
            ranges = []
            for part in value.strip("[]").split(","):
                if part.strip():
                    begin, _, end = part.strip().partition("-")
                    ranges.append({"begin": int(begin), "end": int(end)})
            out.append({"name": name, "type": "RANGES", "ranges": {"range": ranges}})
    return out


def from_v1(items: Any) -> Resources:
    """v1 ``Resource`` list → scalar totals; ``ValueError`` names what is malformed."""
    if not isinstance(items, list):
        raise ValueError("'resources' must be a list")
    total: Resources = {}
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ValueError("every resource needs a 'name'")
        if item.get("type", "SCALAR") != "SCALAR":
            continue  # ports and other ranges are not accounted by the stand-in
        value = item.get("scalar", {}).get("value") if isinstance(item.get("scalar"), dict) else None
        if not isinstance(value, int | float) or value < 0:
            raise ValueError(f"resource '{item['name']}' needs a non-negative scalar value")
        total[item["name"]] = round(total.get(item["name"], 0.0) + float(value), 6)
    return total


def attributes_v1(attributes: Mapping[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for name, value in sorted(attributes.items()):
        if isinstance(value, int | float):
            out.append({"name": name, "type": "SCALAR", "scalar": {"value": float(value)}})
        else:
            out.append({"name": name, "type": "TEXT", "text": {"value": str(value)}})
    return out


def machine_key(hostname: str, ip: str) -> tuple[str, str]:
    return (hostname, ip)


def machine_text(hostname: str, ip: str) -> str:
    """A MachineID as ``stringify(JSON::protobuf(id))`` prints it: compact JSON, empty fields left out."""
    shown = {k: v for k, v in (("hostname", hostname), ("ip", ip)) if v}
    return json.dumps(shown, separators=(",", ":"))
