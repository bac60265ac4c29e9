"""``provision-min``: create, inspect, resize and remove a bootstrap-agent cluster on Open Telekom Cloud, or on
this machine with ``--cloud local`` (systemd-nspawn nodes; see ``provision_min.local``).

    provision-min plan|up|status|scale N|down --config CLUSTER_FILE [--cloud NAME|local]

Results go to standard output; structured logs (JSON lines, stable event names, secrets masked) to standard
error. Exit codes: 0 done, 1 failed (API error, OBS check, timeout — the next ``up``/``down`` continues from
where it stopped), 2 invalid input (nothing was changed).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imports are deferred to the command that needs them: --help stays instant
    from provision_min.clouds import Cloud
    from provision_min.config import ClusterConfig
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

    config = config_mod.load(args.config)
    if args.command == "scale":
        from provision_min.scale import check_count

        check_count(config, args.count)  # before credentials: a wrong N costs nothing
    cloud = _cloud(args, config, env, poller)
    if args.command == "status":
        return cloud.status(args.json)
    if args.command == "scale":
        return cloud.scale(args.count)
    commands = {"plan": cloud.plan, "up": cloud.up, "down": cloud.down}
    return commands[args.command]()


def _cloud(args: argparse.Namespace, config: ClusterConfig, env: dict[str, str] | None,
           poller: Poller | None) -> Cloud:
    """The cloud the command goes to: this machine with ``--cloud local``, else OTC (clouds.yaml / OS_*)."""
    from provision_min import state
    from provision_min.credentials import environment
    from provision_min.errors import InputError
    from provision_min.wait import Poller as PollerClass

    if args.wait_timeout is not None and args.wait_timeout <= 0:
        raise InputError("--wait-timeout: must be > 0")
    if args.cloud == LOCAL:
        from provision_min.local.commands import LocalCloud

        packages = None
        if args.command == "up" and (args.mesos_deb or args.alluxio_tarball):
            if not (args.mesos_deb and args.alluxio_tarball):
                raise InputError("--mesos-deb and --alluxio-tarball go together (real Mesos and Alluxio)")
            packages = (args.mesos_deb, args.alluxio_tarball)
        return LocalCloud(config, wait_timeout=args.wait_timeout, subnet=getattr(args, "subnet", None),
                          packages=packages)
    from provision_min.otc_cloud import OtcCloud

    if args.poll_interval is not None and args.poll_interval < 0:
        raise InputError("--poll-interval: must be >= 0")
    the_poller = poller if poller is not None else PollerClass(interval=args.poll_interval)
    if args.wait_timeout is not None:
        the_poller.timeout = args.wait_timeout
    return OtcCloud(config, env if env is not None else environment(), args.cloud, the_poller,
                    args.state if args.state is not None else state.default_path(config),
                    create_bucket=getattr(args, "create_bucket", False), offline=getattr(args, "offline", False))
