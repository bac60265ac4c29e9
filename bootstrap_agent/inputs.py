"""What a pass reads from outside: instance metadata, user-data and this machine's facts.

Everything here can refuse, and nothing here writes until ``commit_inputs``: "bad input changes nothing"
holds because a pass reads and validates all of it before the first byte goes to disk. Each source falls
back to the last good copy, and only the copy this very instance saved.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bootstrap_agent import DEFAULT_METADATA_URL, DEFAULT_USER_DATA_URL, logs, tls
from bootstrap_agent.errors import InvalidInput, SourceUnavailable
from bootstrap_agent.facts import Facts, InstanceMeta, gather, with_credentials, with_tls
from bootstrap_agent.layout import Layout
from bootstrap_agent.metadata import Fetched, Retry, fetch_meta_data, fetch_security_key, fetch_user_data
from bootstrap_agent.schema import Settings, decode_user_data, validate
from bootstrap_agent.state import State


@dataclass(frozen=True)
class Options:
    """Where a node's inputs come from and how its services run: the ``once`` and ``run`` command lines."""

    root: str = "/"
    user_data_url: str = DEFAULT_USER_DATA_URL
    metadata_url: str = DEFAULT_METADATA_URL
    service_manager: str = "systemd"
    start_timeout: float = 60.0
    retry: Retry = field(default_factory=Retry)
    ip: str | None = None  # the node's cluster address, when it has several


@dataclass(frozen=True)
class Inputs:
    """Everything a pass reads from outside, fetched and validated before anything is written."""

    meta: InstanceMeta
    meta_raw: dict[str, Any]
    fetched: Fetched
    document: Any  # the decoded user-data, to which run-time overrides apply
    settings: Settings


def read_inputs(options: Options, state: State, log: Any) -> Inputs:
    """Metadata and user-data, each from the first source that answers; raises, never writes."""
    meta, meta_raw = _instance_meta(options, state, log)
    fetched = _user_data(options, state, meta, log)
    document = decode_user_data(fetched.body)
    settings = validate(document)
    logs.register_secrets(*settings.secrets(), source="user-data")
    return Inputs(meta, meta_raw, fetched, document, settings)


def node_facts(options: Options, settings: Settings, meta: InstanceMeta, log: Any) -> Facts:
    """This machine's facts, plus the agency's temporary keys when the cluster uses them, plus a master's
    own dashboard certificate when the user-data brings none."""
    facts = gather(meta, preferred_ips=settings.masters, ip=options.ip)
    if settings.role == "master" and not settings.dashboard.tls_certificate:
        state = State(Layout(options.root))
        first_boot = state.is_first_boot(meta.uuid)  # another instance's pair is not ours
        pair = None if first_boot else tls.load(state.dir / "tls")
        facts = with_tls(facts, pair or tls.generate(f"{settings.cluster}-dashboard", facts.ip))
    if settings.credentials and settings.credentials.source == "agency" and settings.alluxio:
        keys = fetch_security_key(options.metadata_url, options.retry)
        logs.register_secrets(keys.secret, keys.token, source="agency")
        facts = with_credentials(facts, keys)
    return facts


def commit_inputs(state: State, inputs: Inputs, facts: Facts, log: Any) -> None:
    """The first writes of a pass: forget another instance's state, keep the good inputs for next time."""
    if state.is_first_boot(inputs.meta.uuid):
        log.info("first_boot", instance_uuid=inputs.meta.uuid, previous=state.instance_uuid())
        state.begin_instance(inputs.meta.uuid)
    state.save_meta_data(inputs.meta_raw)
    if inputs.fetched.source != "last-good":
        state.save_user_data(inputs.meta.uuid, inputs.fetched.body, inputs.fetched.source)
    if facts.tls:
        tls.save(state.dir / "tls", facts.tls)


def _instance_meta(options: Options, state: State, log: Any) -> tuple[InstanceMeta, dict[str, Any]]:
    try:
        raw = fetch_meta_data(options.metadata_url, options.retry)
    except SourceUnavailable as exc:
        stored = state.load_meta_data()
        if stored is None:
            raise
        log.warning("meta_data_from_last_good", error=str(exc))
        raw = stored
    try:
        return InstanceMeta.from_json(raw), raw
    except InvalidInput as exc:
        raise SourceUnavailable(f"instance metadata is unusable: {exc}") from None


def _user_data(options: Options, state: State, meta: InstanceMeta, log: Any) -> Fetched:
    fetched, errors = fetch_user_data(options.user_data_url, options.metadata_url, options.retry)
    for error in errors:
        log.warning("user_data_source_failed", error=error)
    if fetched is not None:
        log.info("user_data_fetched", source=fetched.source, url=fetched.url, bytes=len(fetched.body))
        return fetched
    stored = state.load_user_data()
    if stored is None or stored.instance_uuid != meta.uuid:
        raise SourceUnavailable("no user-data: " + "; ".join(errors) + "; and no last good copy for this instance")
    log.warning("user_data_from_last_good", saved_at=stored.saved_at)
    return Fetched(stored.body, "last-good")
