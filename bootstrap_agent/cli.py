"""``bootstrap-agent``: the command line of the node daemon.

Imports are deferred to the command that needs them: ``validate`` and ``--help`` must answer in well under
0.15 s on a small VM, and the daemon's heavier dependencies (structlog, jinja2, psutil) are only paid for by
the commands that use them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bootstrap_agent import DEFAULT_METADATA_URL, DEFAULT_USER_DATA_URL

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", default="/", help="prefix for every path the agent reads or writes (default /)")
    parser.add_argument("--service-manager", choices=("systemd", "process"), default="systemd",
                        help="who runs the services: systemd, or plain processes supervised under --root")
    parser.add_argument("--user-data-url", default=DEFAULT_USER_DATA_URL,
                        help="the node's nginx cache of the user-data (default %(default)s)")
    parser.add_argument("--metadata-url", default=DEFAULT_METADATA_URL,
                        help="the OpenStack metadata service (default %(default)s)")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bootstrap-agent", description="Self-configuring Mesos + Alluxio cluster node.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    once = commands.add_parser("once", help="one full pass: fetch, validate, plan, apply, start; then exit")
    _common(once)
    once.add_argument("--start-timeout", type=float, default=60.0,
                      help="seconds to wait for the role's services to come up (default 60)")

    render = commands.add_parser("render", help="write the files a node would install under --out; no services")
    render.add_argument("--user-data", required=True, type=Path)
    render.add_argument("--facts", type=Path, help="facts as JSON (default: this machine's, via psutil)")
    render.add_argument("--peers", type=Path, help="peers as JSON (default: none)")
    render.add_argument("--out", required=True, type=Path)
    render.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))

    validate = commands.add_parser("validate", help="check user-data; exit 0 valid, 2 invalid")
    validate.add_argument("file", help="user-data file, or - for standard input")

    status = commands.add_parser("status", help="this node's state from its last pass; exit 0 ready, 1 not")
    status.add_argument("--root", default="/")
    status.add_argument("--json", action="store_true", help="print the state as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = {"once": cmd_once, "render": cmd_render, "validate": cmd_validate, "status": cmd_status}
    code: int = handler[args.command](args)
    return code


def _fail(message: str, code: int) -> int:
    print(f"bootstrap-agent: {message}", file=sys.stderr)
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
    print(f"valid: cluster {settings.cluster}, role {settings.role}, {len(settings.masters)} master(s)")
    return EXIT_OK


def cmd_once(args: argparse.Namespace) -> int:
    from bootstrap_agent import logs
    from bootstrap_agent.errors import AgentError
    from bootstrap_agent.once import Options, run_once

    logs.configure(args.log_level)
    log = logs.get()
    options = Options(
        root=args.root, user_data_url=args.user_data_url, metadata_url=args.metadata_url,
        service_manager=args.service_manager, start_timeout=args.start_timeout,
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
    from bootstrap_agent import logs
    from bootstrap_agent.errors import InvalidInput
    from bootstrap_agent.install import install, write_atomic
    from bootstrap_agent.plan import Layout, plan
    from bootstrap_agent.schema import parse_user_data

    logs.configure(args.log_level)
    try:
        settings = parse_user_data(_read(args.user_data))
        logs.register_secrets(*settings.secrets())
        if args.facts:
            facts = facts_mod.load(args.facts)
        else:
            facts = facts_mod.gather(facts_mod.InstanceMeta("unknown"), preferred_ips=settings.masters)
        peers = _load_peers(args.peers) if args.peers else None
        desired = plan(settings, facts, peers, Layout("/"))
    except OSError as exc:
        return _fail(f"cannot read {exc.filename}: {exc.strerror}", EXIT_INVALID)
    except InvalidInput as exc:
        return _fail(f"invalid input: {exc}", EXIT_INVALID)
    out = Layout(str(args.out))
    existed = {f.path for f in desired.files if Path(out.path(f.path)).exists()}
    result = install(desired.files, out)
    rewritten = existed & set(result.changed)
    for path, reason in result.failed.items():
        _fail(f"{path}: {reason}", EXIT_FAILED)
    services = {
        "enable": [s.unit for s in desired.services],
        "start": [s.unit for s in desired.services],
        # like once: a unit restarts when a file it had already read changed
        "restart": [s.unit for s in desired.services if rewritten & set(s.inputs)],
        "services": [
            {"unit": s.unit, "inputs": list(s.inputs), "ports": [f"{h}:{p}" for h, p in s.ports],
             "reload": s.reload, "version": s.version}
            for s in desired.services
        ],
    }
    write_atomic(Path(out.path("/services.json")), (json.dumps(services, indent=2) + "\n").encode())
    return EXIT_FAILED if result.failed else EXIT_OK


def _load_peers(path: Path) -> Any:
    from bootstrap_agent.errors import InvalidInput
    from bootstrap_agent.plan import Peers

    try:
        data = json.loads(path.read_text("utf-8"))
    except json.JSONDecodeError as exc:
        raise InvalidInput("peers", f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, list) or not all(isinstance(m, dict) for m in data):
        raise InvalidInput("peers", "expected a JSON list of member objects")
    return Peers(tuple(data))


def cmd_status(args: argparse.Namespace) -> int:
    from bootstrap_agent.plan import Layout
    from bootstrap_agent.state import State

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
        for unit, unit_state in sorted(status.get("services", {}).items()):
            print(f"  {unit:16} {unit_state}")
    return EXIT_OK if status.get("state") == "ready" else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
