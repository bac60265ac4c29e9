"""Small typed readers for the user-data schema: each returns the value it was asked for or raises
``InvalidInput`` naming the field by its dotted path, in one line."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from bootstrap_agent.errors import InvalidInput
from bootstrap_agent.logs import mask_url_credentials
from bootstrap_agent.sizes import format_size, parse_size


def kind(value: Any) -> str:
    """The JSON name of what a value is, for error messages ("got a list")."""
    kinds: Mapping[type, str] = {
        dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
        float: "a number", type(None): "null",
    }
    return kinds.get(type(value), type(value).__name__)


def read_object(value: Any, path: str, allowed: frozenset[str] | None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput(path, f"expected an object, got {kind(value)}")
    if allowed is not None:
        for key in value:
            if key not in allowed:
                where = f"{path}.{key}" if path else key
                raise InvalidInput(where, f"unknown key (known: {', '.join(sorted(allowed))})")
    return value


def required(obj: Mapping[str, Any], key: str, parent: str) -> Any:
    if key not in obj:
        raise InvalidInput(f"{parent}.{key}" if parent else key, "required")
    return obj[key]


def read_string(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(path, f"expected a string, got {kind(value)}")
    _no_control(value, path)
    return value


def read_scalar(value: Any, path: str) -> str:
    """Flag and attribute values: strings, numbers and booleans, rendered the way Mesos reads them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return read_string(value, path)


def read_bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(path, f"expected true or false, got {kind(value)}")
    return value


def read_choice(value: Any, path: str, allowed: tuple[str, ...]) -> str:
    text = read_string(value, path)
    if text not in allowed:
        raise InvalidInput(path, f"must be one of {', '.join(allowed)}; got {text!r}")
    return text


def read_size(value: Any, path: str, *, minimum: int = 1, meant: str = "MB", otherwise: str = "") -> int:
    """A size in bytes of at least ``minimum``. A bare number is bytes, as in Alluxio, so ``4`` meant as the
    original tool's ``-b 4`` (4 MB) is refused with the unit that was probably ``meant``; ``otherwise`` names
    another value the key takes (``'off'``)."""
    text = read_string(value, path) if not isinstance(value, int) or isinstance(value, bool) else str(value)
    try:
        size = parse_size(text)
    except ValueError as exc:
        raise InvalidInput(path, str(exc)) from None
    if size < minimum:
        bare = text.strip()
        hint = f"; did you mean {bare}{meant}? (a number without a unit is bytes)" if bare.isdigit() else ""
        also = f"; {otherwise}" if otherwise else ""
        raise InvalidInput(path, f"{text!r} is {size} bytes, less than the minimum {format_size(minimum)}{hint}{also}")
    return size


def read_url(value: Any, path: str) -> str:
    text = read_string(value, path)
    shown = repr(mask_url_credentials(text))  # every message below: credentials in a URL are someone's keys
    if shown != repr(text):
        raise InvalidInput(path, f"{shown} must not carry credentials (give them in 'credentials')")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise InvalidInput(path, f"{shown} is not a URL") from None
    if parts.username or parts.password:
        raise InvalidInput(path, f"{shown} must not carry credentials (give them in 'credentials')")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(path, f"{shown} must be an http:// or https:// URL with a host")
    if parts.query or parts.fragment or " " in text:
        raise InvalidInput(path, f"{shown} must not carry a query or a fragment")
    return text


def _no_control(text: str, path: str) -> None:
    if any(ch in text for ch in "\n\r\x00"):
        raise InvalidInput(path, "must not contain a newline or NUL")
