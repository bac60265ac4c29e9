"""The cluster's run-time overrides in ``config``: read with its version, written with compare-and-set.

Validation against the schema is the caller's (the CLI's) job; this only refuses what is not a JSON object.
"""

from __future__ import annotations

import json
from typing import Any, cast

from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError

from bootstrap_agent.zk.errors import ClusterUnavailable, ConfigConflict, ConfigInvalid
from bootstrap_agent.zk.session import Session
from bootstrap_agent.zk.tree import create_tree


class ClusterConfig:
    def __init__(self, session: Session) -> None:
        self._session = session
        self._invalid_seen: int | None = None

    def read(self) -> tuple[dict[str, Any], int]:
        """The run-time overrides and the znode version to pass as ``expected_version`` (-1: absent)."""
        session, path = self._session, self._session.paths.config
        deadline = session.deadline()
        session.ready(deadline, "config")
        try:
            raw, stat = session.wait(session.client.get_async(path), deadline, "config", expect=(NoNodeError,))
        except NoNodeError:
            return {}, -1
        if not raw:
            return {}, stat.version
        problem: str | None
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            data, problem = None, f"not JSON ({type(exc).__name__})"
        else:
            problem = None if isinstance(data, dict) else f"a JSON {type(data).__name__}, not an object"
        if problem is not None:
            if self._invalid_seen != stat.mzxid:
                self._invalid_seen = stat.mzxid
                session.log.error("config_invalid", path=path, reason=problem)
            raise ConfigInvalid(f"{path} is {problem}; keeping the previous overrides")
        return cast(dict[str, Any], data), stat.version

    def set(self, overrides: dict[str, Any], *, expected_version: int | None = None) -> None:
        """Replace the overrides. With ``expected_version`` (from :meth:`read`) the write only happens if nobody
        changed the znode since; otherwise :class:`ConfigConflict` and nothing is written. ``-1`` means "must
        not exist yet"; ``None`` writes unconditionally."""
        if not isinstance(overrides, dict) or not all(isinstance(key, str) for key in overrides):
            raise ValueError("cluster config overrides must be a dict with string keys")
        try:
            data = json.dumps(overrides, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            raise ValueError(f"cluster config overrides are not JSON: {exc}") from None
        session, path = self._session, self._session.paths.config
        deadline = session.deadline()
        session.ready(deadline, "set_config")
        if expected_version is None:
            version = self._write_any(data, deadline)
        elif expected_version < 0:
            version = self._create(data, deadline)
        else:
            version = self._replace(data, expected_version, deadline)
        session.log.info("config_set", path=path, keys=sorted(overrides), version=version)

    def _write_any(self, data: bytes, deadline: float) -> int:
        session, client, path = self._session, self._session.client, self._session.paths.config
        for _ in range(4):
            try:
                stat = session.wait(client.set_async(path, data), deadline, "set_config", expect=(NoNodeError,))
                return int(stat.version)
            except NoNodeError:
                pass
            try:
                session.wait(client.create_async(path, data, acl=session.config_acl()), deadline, "set_config",
                             expect=(NodeExistsError, NoNodeError))
                return 0
            except NoNodeError:
                create_tree(session, deadline)
            except NodeExistsError:
                pass
        raise ClusterUnavailable(f"set_config: {path} keeps changing under us")

    def _create(self, data: bytes, deadline: float) -> int:
        session, path = self._session, self._session.paths.config
        try:
            session.wait(session.client.create_async(path, data, acl=session.config_acl()), deadline, "set_config",
                         expect=(NodeExistsError,))
        except NodeExistsError:
            raise ConfigConflict(f"{path} was created by someone else meanwhile: nothing written") from None
        return 0

    def _replace(self, data: bytes, expected_version: int, deadline: float) -> int:
        session, path = self._session, self._session.paths.config
        try:
            stat = session.wait(session.client.set_async(path, data, expected_version), deadline, "set_config",
                                expect=(BadVersionError, NoNodeError))
        except BadVersionError:
            raise ConfigConflict(
                f"{path} changed meanwhile (expected version {expected_version}): nothing written"
            ) from None
        except NoNodeError:
            raise ConfigConflict(f"{path} was deleted meanwhile: nothing written") from None
        return int(stat.version)
