"""``provision-min``: create, inspect, resize and remove a bootstrap-agent cluster on Open Telekom Cloud, or on
this machine with ``--cloud local`` (systemd-nspawn nodes; see ``provision_min.local``).

    provision-min plan|up|status|scale N|down --config CLUSTER_FILE [--cloud NAME|local]

Results go to standard output; structured logs (JSON lines, stable event names, secrets masked) to standard
error. Exit codes: 0 done, 1 failed (API error, OBS check, timeout — the next ``up``/``down`` continues from
where it stopped), 2 invalid input (nothing was changed).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imports are deferred to the command that needs them: --help stays instant
    from provision_min.config import ClusterConfig
    from provision_min.otc import OtcClient
    from provision_min.wait import Poller

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2
LOCAL = "local"  #: --cloud local: this machine, not a cloud of clouds.yaml


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="provision-min",
        description="Create (and remove) a self-bootstrapping Mesos/Alluxio cluster on Open Telekom Cloud.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    plan = commands.add_parser("plan", help="print every call up would make, as JSON lines; change nothing")
    plan.add_argument("--offline", action="store_true",
                      help="assume nothing exists yet; needs no credentials and makes no API call")
    up = commands.add_parser("up", help="create what is missing (a re-run is safe) and wait until it works")
    up.add_argument("--create-bucket", action="store_true",
                    help="create the Alluxio under-FS bucket when it does not exist (default: stop)")
    up.add_argument("--subnet", metavar="CIDR",
                    help="local cloud: the cluster's /24 (default: the first free one of 10.231.0.0/16)")
    up.add_argument("--mesos-deb", metavar="URL_OR_PATH",
                    help="local cloud: build the node image with this Mesos package instead of the stand-in "
                         "(with --alluxio-tarball)")
    up.add_argument("--alluxio-tarball", metavar="URL_OR_PATH",
                    help="local cloud: build the node image with this Alluxio release instead of the stand-in")
    status = commands.add_parser("status", help="show the VPC, masters, AS group and its instances")
    status.add_argument("--json", action="store_true", help="print the status as one JSON object")
    scale = commands.add_parser("scale", help="set the AS group's desired number of agents")
    scale.add_argument("count", type=int, metavar="N", help="desired agents, within agents.min..agents.max")
    down = commands.add_parser("down", help="remove everything up created, in reverse order")
    for sub in (plan, up, status, scale, down):
        _common(sub)
    return parser


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, type=Path, metavar="CLUSTER_FILE",
                        help="the cluster file (YAML or JSON)")
    parser.add_argument("--cloud", "--os-cloud", dest="cloud", metavar="NAME",
                        help="the cloud in clouds.yaml (default: $OS_CLOUD, else OS_* variables); 'local': "
                             "this machine (root; systemd-nspawn containers)")
    parser.add_argument("--state", type=Path, metavar="FILE",
                        help="the cluster's state file with its secret (default: <cluster>.state.json beside "
                             "the cluster file)")
    parser.add_argument("--wait-timeout", type=float, metavar="SECONDS",
                        help="longest wait for any one resource (default: per resource, 3 to 20 minutes)")
    parser.add_argument("--poll-interval", type=float, default=2.0, metavar="SECONDS",
                        help="first interval between status polls; grows to 15 s (default 2)")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))


def main(argv: Sequence[str] | None = None, *, env: Mapping[str, str] | None = None,
         poller: Poller | None = None) -> int:
    """Run one command. ``env`` and ``poller`` let tests pass an environment and a clock without sleeping."""
    args = build_parser().parse_args(argv)
    from bootstrap_agent import logs
    from provision_min.errors import ProvisionError

    logs.configure(args.log_level)
    environment = dict(env) if env is not None else None
    try:
        return _run(args, environment, poller)
    except ProvisionError as exc:
        print(f"provision-min: {logs.mask(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("provision-min: interrupted; run the same command again to continue", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace, env: dict[str, str] | None, poller: Poller | None) -> int:
    from provision_min import config as config_mod
    from provision_min import state
    from provision_min.credentials import environment
    from provision_min.errors import InputError
    from provision_min.wait import Poller as PollerClass

    env = env if env is not None else environment()
    config = config_mod.load(args.config)
    state_path = args.state if args.state is not None else state.default_path(config)
    if args.command == "scale":
        from provision_min.scale import check_count

        check_count(config, args.count)  # before credentials: a wrong N costs nothing
    if args.cloud == LOCAL:
        return _run_local(args, config)
    if args.poll_interval is not None and args.poll_interval < 0:
        raise InputError("--poll-interval: must be >= 0")
    the_poller = poller if poller is not None else PollerClass(interval=args.poll_interval)
    if args.wait_timeout is not None:
        if args.wait_timeout <= 0:
            raise InputError("--wait-timeout: must be > 0")
        the_poller.timeout = args.wait_timeout

    if args.command == "plan" and args.offline:
        from provision_min.up import run_plan

        lines, _ = run_plan(config, None, state_path)
        for line in lines:
            print(line)
        return EXIT_OK

    client = _client(args, config, env)
    if args.command == "plan":
        from provision_min.up import run_plan

        lines, count = run_plan(config, client, state_path)
        for line in lines:
            print(line)
        if not count:
            print(f"provision-min: cluster {config.cluster} is complete; up would make no change", file=sys.stderr)
        return EXIT_OK
    if args.command == "up":
        return _up(args, config, client, the_poller, state_path)
    if args.command == "status":
        from provision_min.status import render, run_status

        report = run_status(config, client)
        print(json.dumps(report, indent=2) if args.json else render(report))
        return EXIT_OK if report["complete"] else EXIT_FAILED
    if args.command == "scale":
        from provision_min.scale import run_scale

        scaled = run_scale(config, client, args.count)
        print(f"AS group {scaled.group}: desired {scaled.before} -> {scaled.after} (min {scaled.minimum}, "
              f"max {scaled.maximum}; {scaled.current} instance(s) now)")
        return EXIT_OK
    if args.command == "down":
        from provision_min.down import run_down

        result = run_down(config, client, the_poller, state_path)
        if result.deleted:
            print(f"cluster {config.cluster}: removed ({result.deleted} delete calls)")
        else:
            print(f"cluster {config.cluster}: nothing to remove")
        if result.state_removed:
            print(f"state file {state_path} removed")
        return EXIT_OK
    raise AssertionError(args.command)  # pragma: no cover


def _client(args: argparse.Namespace, config: ClusterConfig, env: dict[str, str]) -> OtcClient:
    import requests

    from provision_min.credentials import load_auth
    from provision_min.otc import OtcClient
    from provision_min.token import TokenSource, default_cache_dir

    auth = load_auth(args.cloud, env, region=config.region)
    http = requests.Session()
    tokens = TokenSource(auth, http, cache_dir=default_cache_dir(env))
    return OtcClient(tokens, http, config.region)


def _up(args: argparse.Namespace, config: ClusterConfig, client: OtcClient, poller: Poller, state_path: Path) -> int:
    from provision_min.topology import dashboard_url, topology
    from provision_min.up import run_up

    result = run_up(config, client, poller, state_path, create_bucket=args.create_bucket)
    topo = topology(config)
    print(f"cluster {config.cluster}: " + (f"{result.created} create calls made" if result.created
                                           else "complete, nothing to create"))
    print(f"OBS: {result.bucket}")
    print("masters: " + ", ".join(f"{n} {ip}" for n, ip in zip(topo.master_names, topo.master_ips, strict=True)))
    public_ip = result.ids.get("eip_address")
    if public_ip:
        print(f"master public IP: {public_ip}")
        print(f"dashboard: {dashboard_url(str(public_ip))}")
    print(f"agents: AS group {topo.as_group_name} (desired {config.agents.desired} at creation, min "
          f"{config.agents.min}, max {config.agents.max})")
    for warning in result.warnings:
        print(f"provision-min: warning: {warning}", file=sys.stderr)
    return EXIT_OK


def _run_local(args: argparse.Namespace, config: ClusterConfig) -> int:
    """The local cloud: the same commands, carried out on this machine (``provision_min.local.cloud``)."""
    from provision_min.errors import InputError
    from provision_min.local import cloud

    if args.wait_timeout is not None and args.wait_timeout <= 0:
        raise InputError("--wait-timeout: must be > 0")
    timeout = args.wait_timeout or cloud.DEFAULT_READY_TIMEOUT
    if args.command == "plan":
        raise InputError("plan: the local cloud has no API calls to show; up prints each step as it goes")
    if args.command == "up":
        packages = None
        if args.mesos_deb or args.alluxio_tarball:
            if not (args.mesos_deb and args.alluxio_tarball):
                raise InputError("--mesos-deb and --alluxio-tarball go together (real Mesos and Alluxio)")
            packages = (args.mesos_deb, args.alluxio_tarball)
        result = cloud.up(config, subnet=args.subnet, out=sys.stderr, ready_timeout=timeout, packages=packages)
        state = result.state
        print(f"cluster {config.cluster} (local): ready in {result.seconds:.1f} s"
              + (f" ({result.created} instance(s) started)" if result.created else ", nothing to start"))
        print("masters: " + ", ".join(f"{n.name} {n.ip}" for n in state.masters()))
        print(f"agents: AS group {config.cluster}-agents, {len(state.agents())} instance(s) (min {config.agents.min}, "
              f"max {config.agents.max})")
        print(f"dashboard: {cloud.dashboard_url(state)} (user {state.dashboard_user}; password: dashboard_password "
              f"in {result.paths.state_file})")
        return EXIT_OK
    if args.command == "status":
        report = cloud.status(config)
        print(json.dumps(report, indent=2) if args.json else cloud.render_status(report))
        return EXIT_OK if report["complete"] else EXIT_FAILED
    if args.command == "scale":
        before, after, seconds = cloud.scale(config, args.count, out=sys.stderr, ready_timeout=timeout)
        print(f"AS group {config.cluster}-agents (local): desired {before} -> {after}, settled in {seconds:.1f} s")
        return EXIT_OK
    if args.command == "down":
        gone = cloud.down(config)
        if gone.removed:
            print(f"cluster {config.cluster} (local): removed in {gone.seconds:.1f} s: " + ", ".join(gone.removed))
        else:
            print(f"cluster {config.cluster} (local): nothing to remove")
        return EXIT_OK
    raise AssertionError(args.command)  # pragma: no cover
