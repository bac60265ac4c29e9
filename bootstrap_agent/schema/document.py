"""The user-data document before it is judged: decoding it, its top-level keys, and the run-time overrides
(``bootstrap-agent config set``) applied to it."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from bootstrap_agent.errors import InvalidInput
from bootstrap_agent.schema.runtime import runtime_leaves

SCHEMA_VERSION = 1
MAX_USER_DATA_BYTES = 32 * 1024  # OTC's limit before base64; anything larger never came from a real cloud

TOP_KEYS = frozenset({
    "schema", "cluster", "role", "masters", "secret", "mesos", "alluxio", "credentials", "dashboard", "spark",
    "zeppelin", "jenkins", "operator_acl_id", "autoscaling", "lifecycle", "drain",
})
# Run-time configuration (``bootstrap-agent config set``) may change how the cluster runs, never what it is:
# its identity and its secrets stay where the provisioner put them.
FIXED_KEYS = ("schema", "cluster", "role", "masters", "secret", "credentials", "operator_acl_id")


def decode_user_data(raw: bytes | str) -> Any:
    """The JSON document in user-data, without judging its content yet."""
    if isinstance(raw, bytes):
        if len(raw) > MAX_USER_DATA_BYTES:
            raise InvalidInput("", f"user-data is {len(raw)} bytes, more than the cloud's limit of 32 KB")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput("", f"user-data is not UTF-8 text (byte {exc.start})") from None
    else:
        text = raw
    if text.lstrip().startswith("#cloud-config"):
        raise InvalidInput("", "user-data is a cloud-config, not bootstrap-agent schema-1 JSON")
    try:
        document = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise InvalidInput("", f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise InvalidInput("", "not valid user-data: nested too deeply") from None
    return document


def _no_constant(name: str) -> None:
    raise json.JSONDecodeError(f"{name} is not JSON", name, 0)


def check_override_key(key: str) -> list[str]:
    """The dotted path of a run-time override, split; ``InvalidInput`` for keys that may not be overridden."""
    parts = key.split(".")
    if not key or any(not part for part in parts):
        raise InvalidInput(key or "config", "not a dotted key such as alluxio.block_size")
    if parts[0] in FIXED_KEYS:
        raise InvalidInput(key, f"'{parts[0]}' is fixed at provisioning and cannot be changed at run time")
    if parts[0] not in TOP_KEYS:
        raise InvalidInput(key, f"unknown key (known: {', '.join(sorted(TOP_KEYS - set(FIXED_KEYS)))})")
    return parts


def with_overrides(document: Any, overrides: Mapping[str, Any]) -> Any:
    """``document`` with every run-time override applied, each key on the allow-list (``runtime``) and spread
    into the keys it names; ``InvalidInput`` names the first refused key. The caller validates the result."""
    for key in overrides:
        check_override_key(key)  # fixed and unknown keys say so first
    leaves = runtime_leaves(overrides)
    if not isinstance(document, dict):
        return document
    result = copy.deepcopy(document)
    for key in sorted(leaves):
        parts = key.split(".")
        node = result
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = leaves[key]
    return result
