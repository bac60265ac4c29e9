"""``provision-min``: create, inspect, resize and remove a bootstrap-agent cluster on Open Telekom Cloud, or on
this machine with ``--cloud local`` (systemd-nspawn nodes; see ``provision_min.local``).

    provision-min plan|up|status|scale N|down --config CLUSTER_FILE [--cloud NAME|local]
    provision-min ssh NODE [-- COMMAND] | logs NODE [UNIT] [--follow] --config CLUSTER_FILE [--cloud NAME|local]

Results go to standard output, for a person (``--json``: one JSON object); structured logs (JSON lines, stable
event names, secrets masked) to standard error only with ``--verbose`` or ``--log-format json``. Exit codes:
0 done, 1 failed (API error, OBS check, timeout, interrupted — the next ``up``/``down`` continues from where it
stopped), 2 invalid input or refused (nothing was changed); ``plan --detailed-exitcode``: 3 changes pending.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from provision_min.cli_options import OneLineParser, add_log_options, flag_refusal, logs_wanted
from provision_min.node_access import DEFAULT_LINES, DEFAULT_UNIT

if TYPE_CHECKING:  # imports are deferred to the command that needs them: --help stays instant
    from provision_min.clouds import Cloud
    from provision_min.config import ClusterConfig
    from provision_min.wait import Poller

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2
LOCAL = "local"  #: --cloud local: this machine, not a cloud of clouds.yaml
DEFAULT_POLL_INTERVAL = 2.0


def build_parser() -> argparse.ArgumentParser:
    from bootstrap_agent import __version__

    parser = OneLineParser(
        prog="provision-min",
        description="Create (and remove) a self-bootstrapping Mesos/Alluxio cluster on Open Telekom Cloud.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    plan = commands.add_parser("plan", help="print every call up would make and a summary; change nothing")
    plan.add_argument("--offline", action="store_true",
                      help="assume nothing exists yet; needs no credentials and makes no API call")
    plan.add_argument("--json", action="store_true",
                      help="one JSON line per call ({method, url, body}); the summary goes to stderr")
    plan.add_argument("--detailed-exitcode", action="store_true",
                      help="exit 3 when up would change something, 0 when not (1 failed, 2 invalid as always)")
    up = commands.add_parser("up", help="create what is missing (a re-run is safe) and wait until it works")
    up.add_argument("--json", action="store_true",
                    help="print the result as one JSON object (the progress goes to stderr)")
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
    scale = commands.add_parser("scale", help="set the number of agents (lowering it drains the least loaded first)")
    scale.add_argument("count", type=int, metavar="N", help="desired agents, within agents.min..agents.max")
    scale.add_argument("--json", action="store_true", help="print the result as one JSON object")
    scale.add_argument("--no-wait", action="store_true",
                       help="lowering: return once the chosen agents are asked to leave (do not wait for their drain)")
    down = commands.add_parser("down", help="list what up created, ask, then remove it in reverse order")
    down.add_argument("--yes", "-y", action="store_true",
                      help="remove without asking (for scripts; without a terminal down refuses otherwise)")
    down.add_argument("--json", action="store_true", help="print the result as one JSON object")
    migrate = commands.add_parser(
        "migrate-credentials", help="split a single-secret cluster's ZooKeeper rights: node and operator credentials")
    ssh = commands.add_parser("ssh", help="a shell on a node named as status lists it, or run a command there "
                              "(exit code: the command's)",
                              usage="provision-min ssh NODE --config CLUSTER_FILE [options] [-- COMMAND ...]")
    ssh.add_argument("node", metavar="NODE", help="the node's name (or private address) as status lists it")
    logs = commands.add_parser("logs", help="a unit's journal on a node (default: bootstrap-agent)")
    logs.add_argument("node", metavar="NODE", help="the node's name (or private address) as status lists it")
    logs.add_argument("unit", nargs="?", default=DEFAULT_UNIT, metavar="UNIT",
                      help=f"the systemd unit (default {DEFAULT_UNIT})")
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing new lines until interrupted")
    logs.add_argument("--lines", "-n", type=int, default=DEFAULT_LINES, metavar="N",
                      help=f"how many of the last lines to show first (default {DEFAULT_LINES})")
    for sub in (ssh, logs):
        sub.add_argument("--user", metavar="LOGIN", help="OTC: the login on the nodes (default: linux, the login "
                         "of OTC's Debian images)")
        sub.add_argument("--identity", "-i", type=Path, metavar="FILE",
                         help="OTC: the private key of the cluster's key pair (default: ssh's own choice)")
    for sub in (plan, up, status, scale, down, migrate, ssh, logs):
        _common(sub)
    image = commands.add_parser("image", help="the node image: image build")
    image_commands = image.add_subparsers(dest="image_command", required=True, metavar="COMMAND")
    build = image_commands.add_parser("build", help="build the node image on OTC and print its id for the cluster "
                                      "file (needs no cluster)")
    from image.command import add_build_arguments

    add_build_arguments(build)
    add_log_options(build)
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
    parser.add_argument("--poll-interval", type=float, metavar="SECONDS",
                        help="first interval between status polls; grows to 15 s (default 2)")
    add_log_options(parser)


def main(argv: Sequence[str] | None = None, *, env: Mapping[str, str] | None = None,
         poller: Poller | None = None) -> int:
    """Run one command. ``env`` and ``poller`` let tests pass an environment and a clock without sleeping."""
    words = list(sys.argv[1:] if argv is None else argv)
    remote: list[str] = []
    if words[:1] == ["ssh"] and "--" in words:  # the remote command is everything after --, options or not
        split = words.index("--")
        words, remote = words[:split], words[split + 1:]
    args = build_parser().parse_args(words)
    args.remote = remote
    from bootstrap_agent import logs
    from provision_min.errors import ProvisionError

    logs.configure(args.log_level, enabled=logs_wanted(args))
    environment = dict(env) if env is not None else None
    try:
        if args.command == "image":
            from image.command import build

            return build(args, environment, poller)
        return _run(args, environment, poller)
    except ProvisionError as exc:
        print(f"provision-min: {logs.mask(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("provision-min: interrupted; run the same command again to continue", file=sys.stderr)
        return EXIT_FAILED


def _run(args: argparse.Namespace, env: dict[str, str] | None, poller: Poller | None) -> int:
    from provision_min import config as config_mod
    from provision_min.confirm import Confirmation
    from provision_min.errors import InputError

    refused = flag_refusal(args)
    if refused:
        raise InputError(refused)
    config = config_mod.load(args.config, env)  # env: credentials.*_env of the cluster file
    if args.command == "scale":
        from provision_min.scale import check_count

        check_count(config, args.count)  # before credentials: a wrong N costs nothing
    if args.command == "migrate-credentials":  # no cloud API: the state file, and ZooKeeper where reachable
        from provision_min import migrate_credentials, state

        if args.cloud == LOCAL:
            return migrate_credentials.on_local(config, sys.stdout)
        return migrate_credentials.on_otc(config, args.state or state.default_path(config), sys.stdout)
    confirm = Confirmation(getattr(args, "yes", False))
    if args.command == "down":
        confirm.check_possible(config.cluster)  # no terminal and no --yes: refused before any call
    cloud = _cloud(args, config, env, poller)
    if args.command in ("ssh", "logs"):
        return _reach(cloud, args)
    if args.command == "status":
        return cloud.status(args.json)
    if args.command == "scale":
        return cloud.scale(args.count, args.json, wait=not args.no_wait)
    if args.command == "plan":
        return cloud.plan(args.json, args.detailed_exitcode)
    if args.command == "down":
        return cloud.down(confirm, args.json)
    return cloud.up(args.json)


def _reach(cloud: Cloud, args: argparse.Namespace) -> int:
    """``ssh`` and ``logs``: the remote exit code passes through (ssh's own failures are 255)."""
    from provision_min.clouds import Access
    from provision_min.node_access import journal_command

    access = Access(args.user, args.identity)
    if args.command == "ssh":
        return cloud.shell(args.node, args.remote, access)
    return cloud.shell(args.node, journal_command(args.unit, args.follow, args.lines), access, root=True)


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
    interval = args.poll_interval if args.poll_interval is not None else DEFAULT_POLL_INTERVAL
    the_poller = poller if poller is not None else PollerClass(interval=interval)
    if args.wait_timeout is not None:
        the_poller.timeout = args.wait_timeout
    return OtcCloud(config, env if env is not None else environment(), args.cloud, the_poller,
                    args.state if args.state is not None else state.default_path(config),
                    create_bucket=getattr(args, "create_bucket", False), offline=getattr(args, "offline", False))
