"""The jinja2 environment: strict, so a missing value is an error and never an empty string in a config.

confd users learned the hard way that a template writing ``<no value>`` produces a service that starts and
misbehaves; ``StrictUndefined`` turns that into a failed render before any file is touched.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import jinja2


def env_quote(value: str) -> str:
    """A value for a systemd ``EnvironmentFile=`` (and ``sh``): double quotes, shell escapes."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$").replace("`", "\\`")
    return f'"{escaped}"'


def properties_escape(value: str) -> str:
    """A value for a Java ``.properties`` file, read back exactly by ``java.util.Properties``."""
    out = []
    for index, ch in enumerate(value):
        if ch == "\\":
            out.append("\\\\")
        elif ch == " " and index == 0:
            out.append("\\ ")
        elif ord(ch) > 0x7E or ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return "".join(out)


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("bootstrap_agent", "templates"),
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False),
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["env_quote"] = env_quote
    env.filters["properties_escape"] = properties_escape
    return env


def render(name: str, **context: Any) -> str:
    return environment().get_template(name).render(**context)
