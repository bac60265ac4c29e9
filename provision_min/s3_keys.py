"""The nodes' S3/OBS keys (the cluster file's ``credentials``), resolved before any user-data is built.

A cluster file is something people commit, share and paste into tickets, so the keys need not be in it:
each of ``access_key_id`` and ``secret_access_key`` is given inline, or by ``<key>_env`` (the name of an
environment variable) or ``<key>_file`` (a file of the key alone; ``~`` is the home folder, a relative path is
relative to the cluster file; like the state file it must be readable by its owner only). The nodes still
receive the keys in their user-data; what is resolved here is what ``access_key_id``/``secret_access_key``
would have held inline. Every value is registered as a secret, so no error or log line shows it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bootstrap_agent import logs
from provision_min.errors import InputError
from provision_min.files import read_private

KEYS = ("access_key_id", "secret_access_key")
SOURCES = ("", "_env", "_file")  # inline, environment variable, file


def resolve(section: Mapping[str, Any], env: Mapping[str, str], folder: Path) -> dict[str, Any]:
    """``section`` with each key's ``_env``/``_file`` form replaced by the key itself; ``InputError`` naming the
    field for a variable that is not set, a file that is missing, empty or readable by others."""
    resolved = dict(section)
    if section.get("source") != "keys":  # agency: the keys come from the cloud; the schema names the rest
        for where in (key + suffix for key in KEYS for suffix in SOURCES[1:] if key + suffix in section):
            raise InputError(f"credentials.{where}: only with source 'keys'")
        return resolved
    for key in KEYS:
        given = [key + suffix for suffix in SOURCES if key + suffix in section]
        if len(given) > 1:
            raise InputError(f"credentials.{given[1]}: give only one of {', '.join(given)}")
        if not given or given[0] == key:
            continue
        where = given[0]
        reference = section[where]
        if not isinstance(reference, str) or not reference.strip():
            raise InputError(f"credentials.{where}: expected a non-empty string")
        if where.endswith("_env"):
            resolved[key] = _from_env(reference, env, where)
        else:
            resolved[key] = _from_file(reference, env, folder, where)
        del resolved[where]
    logs.register_secrets(*(str(resolved[k]) for k in KEYS if isinstance(resolved.get(k), str)),
                          source="cluster-file-keys")
    return resolved


def _from_env(name: str, env: Mapping[str, str], where: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise InputError(f"credentials.{where}: the environment variable {name} is not set (or empty)")
    return value


def _from_file(reference: str, env: Mapping[str, str], folder: Path, where: str) -> str:
    path = Path(reference)
    if reference == "~" or reference.startswith("~/"):
        home = env.get("HOME")
        if not home:
            raise InputError(f"credentials.{where}: {reference} starts with ~ but HOME is not set")
        path = Path(home) / reference[2:]
    elif not path.is_absolute():
        path = folder / path
    try:
        data = read_private(path)
    except InputError as exc:
        raise InputError(f"credentials.{where}: {exc}") from None
    except OSError as exc:
        raise InputError(f"credentials.{where}: cannot read {path}: {exc.strerror}") from None
    if data is None:
        raise InputError(f"credentials.{where}: no such file {path}")
    try:
        value = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise InputError(f"credentials.{where}: {path} is not UTF-8 text") from None
    if not value:
        raise InputError(f"credentials.{where}: {path} is empty")
    return value
