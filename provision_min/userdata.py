"""Each node's user-data: a schema-1 document built and validated with the agent's own schema code.

The provisioner never invents a format of its own: it builds the same dict the node will read, encodes it
exactly as it is sent, and runs it through ``bootstrap_agent.schema.parse_user_data`` (which also enforces the
cloud's 32 KB limit before base64). Anything the node would refuse is refused here, before a single resource
is created — a bad flag must never surface as an agent that boots and then fails.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Mapping, Sequence
from typing import Any

from bootstrap_agent.errors import InvalidInput
from bootstrap_agent.schema import MAX_USER_DATA_BYTES, SCHEMA_VERSION, parse_user_data
from provision_min.errors import InputError

MASK = "***"
# Keys whose values are secrets inside a user-data document (the S3 key id too: it names the keys' owner; the
# dashboard's TLS key).
# The operator credential's digest id too: it cannot authenticate, but it is a hash of the password.
SECRET_KEYS = frozenset({"secret", "secret_access_key", "access_key_id", "tls_key", "operator_acl_id"})
# What ``plan`` and the checks use before ``up`` has generated the real secret: as long as a real one
# (secrets.token_urlsafe(32) is 43 characters), so the size check sees the real size.
PLACEHOLDER_SECRET = "placeholder-secret-generated-on-first-up-00"
# The masters' ``operator_acl_id`` before ``up`` has made the operator credential (a digest id's real size).
PLACEHOLDER_OPERATOR_ACL_ID = "bootstrap-operator:" + "A" * 27 + "="


def build(
    *,
    cluster: str,
    role: str,
    masters: Sequence[str],
    secret: str,
    mesos: Mapping[str, Any],
    alluxio: Mapping[str, Any] | None,
    credentials: Mapping[str, Any] | None,
    dashboard: Mapping[str, Any] | None = None,
    operator_acl_id: str | None = None,
    autoscaling: Mapping[str, Any] | None = None,
    lifecycle: Mapping[str, Any] | None = None,
    drain: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The schema-1 user-data of one role, validated; ``InputError`` naming the field when the node would refuse it."""
    document: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "cluster": cluster,
        "role": role,
        "masters": list(masters),
        "secret": secret,
        "mesos": copy.deepcopy(dict(mesos)),
    }
    if alluxio is not None:
        document["alluxio"] = copy.deepcopy(dict(alluxio))
    if credentials is not None:
        document["credentials"] = copy.deepcopy(dict(credentials))
    if dashboard is not None:
        document["dashboard"] = copy.deepcopy(dict(dashboard))
    if operator_acl_id is not None:
        document["operator_acl_id"] = operator_acl_id
    if autoscaling is not None and role == "master":  # the scaler runs on the masters only
        document["autoscaling"] = copy.deepcopy(dict(autoscaling))
    if lifecycle is not None:  # agents only (provision_min.lifecycle): the hook that tells a node to leave
        document["lifecycle"] = dict(lifecycle)
    if drain is not None:
        document["drain"] = dict(drain)
    raw = encode_json(document)
    try:
        parse_user_data(raw)
    except InvalidInput as exc:
        where = exc.path or "user-data"
        raise InputError(f"{where}: {exc.message} (in the {role} user-data)") from None
    return document


def encode_json(document: Mapping[str, Any]) -> bytes:
    """The exact bytes sent to the node (compact JSON, UTF-8): what the 32 KB limit applies to."""
    return json.dumps(document, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode("utf-8")


def to_base64(document: Mapping[str, Any]) -> str:
    """The ``user_data`` field of an ECS or AS-configuration body."""
    raw = encode_json(document)
    if len(raw) > MAX_USER_DATA_BYTES:  # parse_user_data checked it already; this guards direct callers
        raise InputError(f"user-data is {len(raw)} bytes, more than the cloud's limit of 32 KB")
    return base64.b64encode(raw).decode("ascii")


def masked(value: Any) -> Any:
    """A copy of a user-data document (or any part of it) with every secret value replaced by ``***``."""
    if isinstance(value, dict):
        return {k: (MASK if k in SECRET_KEYS and v else masked(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v) for v in value]
    return value


def secrets_of(document: Mapping[str, Any]) -> list[str]:
    """The secret values inside a document, for value-based masking of anything printed or logged."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, item in node.items():
                if key in SECRET_KEYS and isinstance(item, str) and item:
                    found.append(item)
                else:
                    walk(item)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(document)
    return found
