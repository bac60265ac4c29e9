"""Reading other members. Peer data is untrusted: it is validated, and what is invalid is skipped and
logged once per znode version (``peer_invalid``), never raised and never rendered."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from kazoo.exceptions import NoNodeError

from bootstrap_agent.member import Member, PeerInvalid
from bootstrap_agent.zk.session import Session


class PeerReader:
    def __init__(self, session: Session, ip_ok: Callable[[str], bool]) -> None:
        self._session = session
        self._ip_ok = ip_ok
        self._invalid_seen: dict[str, int] = {}

    def members(self) -> list[Member]:
        """Every valid member under ``nodes/`` (a full re-list: masters, status, and the tick's backstop).

        Members leaving between the listing and the read are skipped (a normal race).
        """
        session, paths = self._session, self._session.paths
        deadline = session.deadline()
        session.ready(deadline, "members")
        try:
            children = session.wait(session.client.get_children_async(paths.nodes), deadline, "members",
                                    expect=(NoNodeError,))
        except NoNodeError:
            return []
        session.ready(deadline, "members")
        pending = [(child, session.client.get_async(paths.node(child))) for child in children]
        found: list[Member] = []
        for child, result in pending:
            try:
                raw, stat = session.wait(result, deadline, "members", expect=(NoNodeError,))
            except NoNodeError:
                continue
            try:
                found.append(Member.from_json(child, raw, cluster_ips_ok=self._ip_ok))
            except PeerInvalid as exc:
                self._invalid(paths.node(child), child, stat.mzxid, str(exc))
        present = {paths.node(child) for child in children}
        for path in [p for p in self._invalid_seen if p.startswith(paths.nodes + "/") and p not in present]:
            self._invalid_seen.pop(path, None)
        return sorted(found, key=lambda m: (m.role != "master", m.ip, m.uuid))

    def masters(self, ips: Sequence[str]) -> list[Member]:
        """The masters' znodes ``masters/<ip>`` for the given IPs, in that order; missing or invalid: skipped."""
        session, paths = self._session, self._session.paths
        deadline = session.deadline()
        session.ready(deadline, "masters")
        pending = [(ip, session.client.get_async(paths.master(ip))) for ip in ips]
        found: list[Member] = []
        for ip, result in pending:
            try:
                raw, stat = session.wait(result, deadline, "masters", expect=(NoNodeError,))
            except NoNodeError:
                continue
            path = paths.master(ip)
            try:
                member = Member.from_json(None, raw, cluster_ips_ok=self._ip_ok)
                if member.role != "master" or member.ip != ip:
                    raise PeerInvalid(f"{member.role} {member.ip} written under masters/{ip}")
            except PeerInvalid as exc:
                self._invalid(path, ip, stat.mzxid, str(exc))
                continue
            found.append(member)
        return found

    def _invalid(self, path: str, name: str, version: int, reason: str) -> None:
        if self._invalid_seen.get(path) != version:
            self._invalid_seen[path] = version
            self._session.log.warning("peer_invalid", uuid=name, path=path, reason=reason)
