"""The node image the local cloud boots: built from this checkout for the cluster file's versions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bootstrap_agent.names import ALLUXIO_VERSIONS, MESOS_VERSIONS
from provision_min.config import ClusterConfig
from provision_min.errors import InputError, ProvisionError


def source_tree() -> Path:
    """The checkout this provision-min runs from: the node image is built from its ``image/`` recipe and its
    agent sources (so what boots is exactly this version)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "image" / "recipe.py").is_file() or not (root / "bootstrap_agent").is_dir():
        raise InputError(f"the local cloud builds its node image from a source checkout, and {root} is none: "
                         "run provision-min from a clone (pip install -e .)")
    return root


def image_options(config: ClusterConfig, packages: tuple[str, str] | None) -> Any:
    """The node image for this cluster file: its Mesos and Alluxio versions (the stand-ins check flags and keys
    against those versions' lists), stand-ins unless ``packages`` gives a Mesos .deb and an Alluxio tarball."""
    source_tree()
    from image.recipe import NodeOptions

    mesos = str(config.mesos.get("version", "1.11"))
    alluxio = str((config.alluxio or {}).get("version", "2.9"))
    if mesos not in MESOS_VERSIONS or alluxio not in ALLUXIO_VERSIONS:
        raise InputError(f"the local image has Mesos {'/'.join(MESOS_VERSIONS)} and Alluxio "
                         f"{'/'.join(ALLUXIO_VERSIONS)}, the cluster file asks for Mesos {mesos}, Alluxio {alluxio}")
    options = NodeOptions(mesos_version=mesos, alluxio_version=alluxio)
    if packages is not None:
        options = NodeOptions(standins=False, mesos_version=mesos, alluxio_version=alluxio, mesos_deb=packages[0],
                              alluxio_tarball=packages[1])
    return options


def build_image(config: ClusterConfig, packages: tuple[str, str] | None) -> Any:
    options = image_options(config, packages)
    from image.local import LocalBuilder
    from image.recipe import BuildError

    try:
        return LocalBuilder(options).build()
    except BuildError as exc:
        raise ProvisionError(f"node image: {exc}") from None
