"""``bootstrap-agent``: the command line of the node daemon.

Imports are deferred to the command that needs them: ``validate`` and ``--help`` must answer in well under
0.15 s on a small VM, and the daemon's heavier dependencies (structlog, jinja2, psutil) are only paid for by
the commands that use them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bootstrap_agent import DEFAULT_METADATA_URL, DEFAULT_USER_DATA_URL, __version__
from bootstrap_agent.cli_parser import OneLineParser, add_log_options
from bootstrap_agent.ports import METRICS_PORT

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", default="/", help="prefix for every path the agent reads or writes (default /)")
    parser.add_argument("--service-manager", choices=("systemd", "process"), default="systemd",
                        help="who runs the services: systemd, or plain processes supervised under --root")
    parser.add_argument("--user-data-url", default=DEFAULT_USER_DATA_URL,
                        help="the node's nginx cache of the user-data (default %(default)s)")
    parser.add_argument("--metadata-url", default=DEFAULT_METADATA_URL,
                        help="the OpenStack metadata service (default %(default)s)")
    parser.add_argument("--ip", help="this node's cluster address, when it has several (default: chosen)")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="bootstrap-agent", description="Self-configuring Mesos + Alluxio cluster node.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    once = commands.add_parser("once", help="one full pass: fetch, validate, plan, apply, start; then exit")
    _common(once)
    once.add_argument("--start-timeout", type=float, default=60.0,
                      help="seconds to wait for the role's services to come up (default 60)")

    run = commands.add_parser("run", help="the daemon (systemd Type=notify): keep the node converged")
    _common(run)
    run.add_argument("--start-timeout", type=float, default=60.0)
    run.add_argument("--tick", type=float, default=60.0, help="seconds between full re-lists (default 60)")
    run.add_argument("--debounce-min", type=float, default=0.2, help="quiet time that ends a burst (default 0.2)")
    run.add_argument("--debounce-max", type=float, default=2.0, help="longest wait for a burst to end (default 2)")
    run.add_argument("--zk-session-timeout", type=float, default=10.0)
    run.add_argument("--metrics-port", type=int, default=METRICS_PORT, metavar="PORT",
                     help=f"the Prometheus exporter's port on the node's private address (default {METRICS_PORT}; "
                          "0 turns it off; masters list every node with the default in prometheus/targets.json)")
    run.add_argument("--drain-on-stop", choices=("auto", "always", "never"), default="auto",
                     help="whether SIGTERM drains an agent first: auto (only while the system stops), always, never")

    config = commands.add_parser("config", help="read or change the cluster's run-time configuration")
    config_commands = config.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    get = config_commands.add_parser("get", help="print the overrides (or one of them) as JSON")
    get.add_argument("key", nargs="?")
    set_ = config_commands.add_parser("set", help="set KEY to VALUE (JSON, else a string; null removes it)")
    set_.add_argument("key")
    set_.add_argument("value")
    migrate = config_commands.add_parser(
        "migrate", help="give the tree the node/operator ACLs (also repairs ACLs that drifted); needs the operator's")
    for sub in (get, set_, migrate):
        _cluster_access(sub)
    for sub in (set_, migrate):
        sub.add_argument("--operator-secret-file", type=Path, required=sub is migrate, metavar="FILE",
                         help="the operator credential: a 0600 file with the secret, or provision-min's state file")

    render = commands.add_parser("render", help="write the files a node would install under --out; no services")
    render.add_argument("--user-data", required=True, type=Path)
    render.add_argument("--facts", type=Path, help="facts as JSON (default: this machine's, via psutil)")
    render.add_argument("--peers", type=Path, help="peers as JSON (default: none)")
    render.add_argument("--out", required=True, type=Path,
                        help="the folder to render into (relative or absolute); replaced whole, never half")
    add_log_options(render)

    validate = commands.add_parser("validate", help="check user-data; exit 0 valid, 2 invalid")
    validate.add_argument("file", help="user-data file, or - for standard input")
    validate.add_argument("--json", action="store_true", help="print the result as one JSON object")

    status = commands.add_parser("status", help="this node's state from its last pass; exit 0 ready, 1 not")
    status.add_argument("--json", action="store_true", help="print the state as JSON")
    status.add_argument("--cluster", action="store_true", help="every member of the cluster, from ZooKeeper")
    _cluster_access(status)
    return parser


def _configure_logs(args: argparse.Namespace) -> None:
    from bootstrap_agent import logs
    from bootstrap_agent.cli_parser import logs_wanted

    logs.configure(args.log_level, enabled=logs_wanted(args))


def _cluster_access(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", default="/")
    parser.add_argument("--user-data", type=Path,
                        help="the cluster's user-data (default: this node's last good copy under --root)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to reach ZooKeeper (default 10)")
    add_log_options(parser)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = {"once": cmd_once, "run": cmd_run, "render": cmd_render, "validate": cmd_validate,
               "status": cmd_status, "config": cmd_config}
    code: int = handler[args.command](args)
    return code


def _fail(message: str, code: int) -> int:
    """Every error line of the CLI: masked, so no secret of the user-data and no URL's password is echoed."""
    from bootstrap_agent.logs import mask

    print(f"bootstrap-agent: {mask(message)}", file=sys.stderr)
    return code


def _read(path: str | Path) -> bytes:
    if str(path) == "-":
        return sys.stdin.buffer.read()
    return Path(path).read_bytes()


def cmd_validate(args: argparse.Namespace) -> int:
    from bootstrap_agent.errors import InvalidInput
    from bootstrap_agent.schema import parse_user_data

    try:
        settings = parse_user_data(_read(args.file))
    except OSError as exc:
        return _fail(f"cannot read {args.file}: {exc.strerror}", EXIT_INVALID)
    except InvalidInput as exc:
        return _fail(f"invalid user-data: {exc}", EXIT_INVALID)
    if args.json:
        print(json.dumps({"valid": True, "cluster": settings.cluster, "role": settings.role,
                          "masters": list(settings.masters)}))
    else:
        print(f"valid: cluster {settings.cluster}, role {settings.role}, {len(settings.masters)} master(s)")
    return EXIT_OK


def cmd_once(args: argparse.Namespace) -> int:
    from bootstrap_agent import logs
    from bootstrap_agent.errors import AgentError
    from bootstrap_agent.inputs import Options
    from bootstrap_agent.once import run_once

    logs.configure(args.log_level)
    log = logs.get()
    options = Options(
        root=args.root, user_data_url=args.user_data_url, metadata_url=args.metadata_url,
        service_manager=args.service_manager, start_timeout=args.start_timeout, ip=args.ip,
    )
    try:
        outcome = run_once(options, log)
    except AgentError as exc:
        return _fail(str(exc), exc.exit_code)
    except Exception as exc:  # a bug or an unexpected OS error: say so in one line, keep the details in the log
        log.exception("pass_crashed", error=str(exc))
        return _fail(f"internal error: {type(exc).__name__}: {exc}", EXIT_FAILED)
    if outcome.exit_code:
        _fail(outcome.reason, outcome.exit_code)
    return outcome.exit_code


def cmd_render(args: argparse.Namespace) -> int:
    from bootstrap_agent import facts as facts_mod
    from bootstrap_agent import logs, tls
    from bootstrap_agent.errors import AgentError, InvalidInput
    from bootstrap_agent.layout import Layout
    from bootstrap_agent.node_paths import DASHBOARD_CERT, DASHBOARD_KEY
    from bootstrap_agent.plan import plan
    from bootstrap_agent.render import RenderRefused, render
    from bootstrap_agent.schema import parse_user_data

    _configure_logs(args)

    def plan_of(previous: Layout) -> Any:
        settings = parse_user_data(_read(args.user_data))
        logs.register_secrets(*settings.secrets(), source="user-data")
        if args.facts:
            facts = facts_mod.load(args.facts)
        else:
            facts = facts_mod.gather(facts_mod.InstanceMeta("unknown"), preferred_ips=settings.masters)
        peers = _load_peers(args.peers) if args.peers else None
        if settings.role == "master" and not settings.dashboard.tls_certificate and facts.tls is None:
            # What a node makes for itself at first boot; rendering into the same folder again keeps it.
            try:
                pair = (Path(previous.path(DASHBOARD_CERT)).read_text(),
                        Path(previous.path(DASHBOARD_KEY)).read_text())
            except FileNotFoundError:
                pair = tls.generate(f"{settings.cluster}-dashboard", facts.ip)
            facts = facts_mod.with_tls(facts, pair)
        return plan(settings, facts, peers, Layout("/"))

    try:
        render(plan_of, args.out)
    except OSError as exc:
        return _fail(f"cannot use {exc.filename}: {exc.strerror}", EXIT_INVALID)
    except InvalidInput as exc:
        return _fail(f"invalid input: {exc}", EXIT_INVALID)
    except (AgentError, RenderRefused) as exc:  # render promises 0 or 2: whatever stops it, DIR is unchanged
        return _fail(logs.mask(str(exc)), EXIT_INVALID)
    return EXIT_OK


def _load_peers(path: Path) -> Any:
    from bootstrap_agent.desired import Peers
    from bootstrap_agent.errors import InvalidInput

    try:
        data = json.loads(path.read_text("utf-8"))
    except json.JSONDecodeError as exc:
        raise InvalidInput("peers", f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, list) or not all(isinstance(m, dict) for m in data):
        raise InvalidInput("peers", "expected a JSON list of member objects")
    return Peers(tuple(data))


def cmd_run(args: argparse.Namespace) -> int:
    from bootstrap_agent import daemon, logs
    from bootstrap_agent.inputs import Options

    logs.configure(args.log_level)
    options = daemon.DaemonOptions(
        once=Options(root=args.root, user_data_url=args.user_data_url, metadata_url=args.metadata_url,
                     service_manager=args.service_manager, start_timeout=args.start_timeout, ip=args.ip),
        tick=args.tick, debounce_min=args.debounce_min, debounce_max=args.debounce_max,
        zk_session_timeout=args.zk_session_timeout, metrics_port=args.metrics_port,
        drain_on_stop=args.drain_on_stop,
    )
    return daemon.Daemon(options, logs.get()).run()


def _cluster_settings(args: argparse.Namespace) -> tuple[Any, Any]:
    """The cluster's settings and user-data document, from --user-data or the node's last good copy."""
    from bootstrap_agent.errors import InvalidInput
    from bootstrap_agent.layout import Layout
    from bootstrap_agent.schema import decode_user_data, validate
    from bootstrap_agent.state import State

    if args.user_data:
        raw = _read(args.user_data)
    else:
        stored = State(Layout(args.root)).load_user_data()
        if stored is None:
            raise InvalidInput("user-data", f"no user-data under {args.root} yet: give --user-data F")
        raw = stored.body
    document = decode_user_data(raw)
    return validate(document), document


def _connect(settings: Any, timeout: float, operator: str | None = None) -> Any:
    from bootstrap_agent import logs
    from bootstrap_agent.cluster import ClusterStore, ClusterUnavailable
    from bootstrap_agent.zk.paths import ensemble

    logs.register_secrets(*settings.secrets(), source="user-data")
    store = ClusterStore(ensemble(settings.masters), settings.cluster, settings.secret,
                         on_event=lambda kind, detail: None, log=logs.get(), operator_secret=operator)
    store.start()
    if not store.wait_connected(timeout):
        store.stop()
        raise ClusterUnavailable(f"ZooKeeper at {', '.join(settings.masters)} not reachable within {timeout:.0f} s")
    return store


def _with_cluster(args: argparse.Namespace, action: Callable[[Any, Any, Any], int]) -> int:
    """Connect with this cluster's secret, run ``action(settings, document, store)``, always disconnect."""
    from bootstrap_agent import operator_secret
    from bootstrap_agent.cluster import ClusterUnavailable, ConfigConflict, NotAuthorized
    from bootstrap_agent.errors import InvalidInput

    _configure_logs(args)  # ZooKeeper's own complaints only with --verbose: the result is one line
    try:
        settings, document = _cluster_settings(args)
        operator_file = getattr(args, "operator_secret_file", None)
        store = _connect(settings, args.timeout, operator_secret.read(operator_file) if operator_file else None)
    except OSError as exc:
        return _fail(f"cannot read {exc.filename}: {exc.strerror}", EXIT_INVALID)
    except InvalidInput as exc:
        return _fail(f"invalid: {exc}", EXIT_INVALID)
    except ClusterUnavailable as exc:
        return _fail(str(exc), EXIT_FAILED)
    try:
        return action(settings, document, store)
    except NotAuthorized as exc:  # the node credential asked for the operator's rights: a refusal, not an outage
        return _fail(f"refused, nothing changed: {exc} (the run-time config and the ACLs need the operator "
                     "credential: --operator-secret-file FILE)", EXIT_INVALID)
    except ConfigConflict as exc:  # someone else changed the config first: nothing written, read again
        return _fail(str(exc), EXIT_FAILED)
    except ClusterUnavailable as exc:
        return _fail(str(exc), EXIT_FAILED)
    finally:
        store.stop()


def cmd_config(args: argparse.Namespace) -> int:
    from bootstrap_agent.errors import InvalidInput
    from bootstrap_agent.schema import check_override_key, validate, with_overrides
    from bootstrap_agent.schema.runtime import runtime_leaves

    value: Any = None
    if args.config_command == "set":
        try:
            value = json.loads(args.value)
        except ValueError:
            value = args.value
        try:
            check_override_key(args.key)
            if value is not None:  # null only removes an override: always allowed, it narrows the config
                runtime_leaves({args.key: value})
        except InvalidInput as exc:
            return _fail(f"refused, nothing changed: {exc}", EXIT_INVALID)

    def action(settings: Any, document: Any, store: Any) -> int:
        if args.config_command == "migrate":  # the operator's ACLs on every znode of the tree (idempotent)
            store.ensure_tree()
            print(f"{store.paths.base}: node and operator credentials in place")
            return EXIT_OK
        overrides, version = store.read_config()
        if args.config_command == "get":
            print(json.dumps(overrides.get(args.key) if args.key else overrides, indent=None if args.key else 2,
                             sort_keys=True))
            return EXIT_OK
        changed = {k: v for k, v in overrides.items() if k != args.key}
        if value is not None:
            changed[args.key] = value
        try:
            validate(with_overrides(document, changed))
        except InvalidInput as exc:
            return _fail(f"refused, nothing changed: {exc}", EXIT_INVALID)
        store.set_config(changed, expected_version=version)  # refused if someone changed it meanwhile
        print(f"{args.key} = {json.dumps(value)}")
        return EXIT_OK

    return _with_cluster(args, action)


def _cluster_status(args: argparse.Namespace) -> int:
    def action(settings: Any, document: Any, store: Any) -> int:
        return _print_members(args, settings, store.members())

    return _with_cluster(args, action)


def _print_members(args: argparse.Namespace, settings: Any, members: Any) -> int:
    rows = sorted(members, key=lambda m: (m.role != "master", m.ip))
    if args.json:
        print(json.dumps({"cluster": settings.cluster, "members": [
            {"uuid": m.uuid, "role": m.role, "ip": m.ip, "hostname": m.hostname, "state": m.state,
             "reason": m.reason, "services": m.services, "since": m.since} for m in rows]}, sort_keys=True))
    else:
        print(f"cluster {settings.cluster}: {len(rows)} member(s)")
        for m in rows:
            reason = f" ({m.reason})" if m.reason else ""
            print(f"  {m.role:6} {m.ip:15} {m.hostname:24} {m.state}{reason}")
    ready = bool(rows) and all(m.state == "ready" for m in rows)
    return EXIT_OK if ready else EXIT_FAILED


def cmd_status(args: argparse.Namespace) -> int:
    from bootstrap_agent.layout import Layout
    from bootstrap_agent.state import State

    if args.cluster:
        return _cluster_status(args)
    status = State(Layout(args.root)).status()
    if status is None:
        if args.json:
            print(json.dumps({"state": "unknown", "reason": "no pass has completed on this node"}))
        else:
            print("state: unknown (no pass has completed on this node)")
        return EXIT_FAILED
    if args.json:
        print(json.dumps(status, sort_keys=True))
    else:
        print(f"state: {status.get('state')}  cluster: {status.get('cluster')}  role: {status.get('role')}"
              f"  ip: {status.get('ip')}")
        if status.get("reason"):
            print(f"reason: {status['reason']}")
        if status.get("clock") not in (None, "synchronized"):
            print(f"clock: {status['clock']} (OBS refuses requests from a clock 15 minutes off)")
        for unit, unit_state in sorted(status.get("services", {}).items()):
            print(f"  {unit:16} {unit_state}")
    return EXIT_OK if status.get("state") == "ready" else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
