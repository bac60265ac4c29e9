"""The cluster file's one-field checks (``config.py`` and ``config_sections.py`` use them): each reads one
key, and a bad value is one line naming the field (``root_volume_gb: must be a whole number from 10 to
1024, got "x"``), shown as the user wrote it.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from typing import Any

from provision_min.errors import InputError

NAME_LIKE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
AGENCY_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # IAM: 1-64 letters, digits, '_' and '-'
IMAGE_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)

def show(value: Any) -> str:
    """A value as the user wrote it, for messages (YAML may hand us dates and other non-JSON types)."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def kind(value: Any) -> str:
    kinds: Mapping[type, str] = {
        dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "a number",
        float: "a number", type(None): "nothing",
    }
    return kinds.get(type(value), type(value).__name__)


def string(document: Mapping[str, Any], key: str) -> str:
    value = document[key]
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{key}: expected a non-empty string, got {kind(value)}")
    if any(ch in value for ch in "\n\r\x00"):
        raise InputError(f"{key}: must not contain a newline or NUL")
    return value


def name_like(document: Mapping[str, Any], key: str) -> str:
    value = string(document, key)
    if not NAME_LIKE.match(value):
        raise InputError(f"{key}: {value!r} may only hold letters, digits and '._:-'")
    return value


def agency(document: Mapping[str, Any]) -> str | None:
    """The IAM agency (delegated to ECS) that ``up`` attaches to every node: the nodes' temporary keys come from
    it, and without one a node cannot call back its lifecycle hook nor a master's scaler act."""
    if "agency" not in document:
        return None
    value = string(document, "agency")
    if not AGENCY_NAME.match(value):
        raise InputError(f"agency: {value!r} is not an IAM agency name (1 to 64 letters, digits, '_' and '-')")
    return value


def image_id(document: Mapping[str, Any]) -> str:
    """An IMS image id is a UUID (``provision-min image build`` prints it); a name is not accepted."""
    value = string(document, "image_id")
    if not IMAGE_ID.match(value):
        raise InputError(f"image_id: {value!r} is not an image id (a UUID such as 0b1c2d3e-...; not the image's name)")
    return value


def network(document: Mapping[str, Any], key: str) -> ipaddress.IPv4Network:
    value = document[key]
    if not isinstance(value, str):
        raise InputError(f"{key}: expected a CIDR such as 192.168.0.0/24, got {kind(value)}")
    try:
        return ipaddress.IPv4Network(value, strict=True)
    except ValueError as exc:
        raise InputError(f"{key}: {value!r} is not an IPv4 network in CIDR form ({exc})") from None


def whole(document: Mapping[str, Any], key: str, default: int, low: int, high: int, prefix: str = "") -> int:
    if key not in document:
        return default
    value = document[key]
    if type(value) is not int or not low <= value <= high:
        raise InputError(f"{prefix}{key}: must be a whole number from {low} to {high}, got {show(value)}")
    return value


def choice(document: Mapping[str, Any], key: str, default: str, allowed: tuple[str, ...]) -> str:
    if key not in document:
        return default
    value = document[key]
    if value not in allowed:
        raise InputError(f"{key}: must be one of {', '.join(allowed)}, got {show(value)}")
    return str(value)
