"""Side by side: the original deployment's cloud-init agent config vs bootstrap-agent, on the same image.

Run: ``python3 -m pytest tests/bench/test_bench_boot.py -m bench -s`` (as root; ``BA_BENCH_BOOTS=N`` boots
per side, default 3). It prints one ``BENCH`` line per boot and the ratio.

The image is the local node image (stand-ins, Alluxio 1.8 as in the original deployment) plus Debian's
``cloud-init`` package, cached as ``bench-<digest>`` beside the node images. Every boot is a fresh
container (first boot) on a test bridge, as an *agent* joining a cluster whose master (bootstrap-agent, not
measured) runs on the same bridge throughout:

* **cloud-init**: NoCloud datasource (a seed folder bound in), the user-data is
  ``../shared/reference/seed-agent-cloud-config.yaml`` read from there and filled in here; bootstrap-agent
  is masked (``systemd.mask=`` on the container's command line).
* **bootstrap-agent**: the agent's user-data from the metadata service at 169.254.169.254 (through the
  node's nginx cache, as always); the four cloud-init units are masked.

Measured, per boot, from the start of ``systemd-nspawn`` to "configuration written and services started":
the latest ``ActiveEnterTimestampMonotonic`` (the host's monotonic clock) of the configuring unit
(``cloud-final.service`` | ``bootstrap-agent.service``, whose READY=1 only comes once the services
listen) and of every service the config starts (cloud-init: mesos-slave, alluxio-worker, alluxio-proxy,
nginx; bootstrap-agent: mesos-agent, alluxio-worker, alluxio-proxy, nginx).

What a container cannot do like the original VM, and how the benchmark adapts it (``ADAPTATIONS``):
the image gets what the original image had from its packages and platform — a ``linux`` user, the
``/opt/alluxio/conf``, ``/var/lib/docker``, ``/var/lib/mesos`` and ``/var/log/mesos`` folders, and a
``mesos-slave.service`` that runs the Mesos stand-in the way mesosphere's ``mesos-init-wrapper`` runs
``mesos-slave`` (sourcing ``/etc/default/mesos`` and ``/etc/default/mesos-slave``); cloud-init does not
configure the network (the local cloud's networkd file does, as OTC's DHCP would); and the config's
``systemctl start|enable docker`` and ``spark-shuffle`` lines are removed (no Docker daemon in a container;
Spark's shuffle service is not part of this image). Everything else runs as written, ``mount`` included.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from image.local import CACHE_ROOT, CHROOT_PATH, LocalBuilder
from image.recipe import NodeOptions
from image.rootfs import chroot_mounts, locked, remove_tree
from tests.support import container as ct
from tests.support.container import Container, TestNetwork
from tests.support.metadata_server import MetadataServer

pytestmark = pytest.mark.bench

SEED_CONFIG = Path(__file__).resolve().parents[3] / "shared" / "reference" / "seed-agent-cloud-config.yaml"
BOOTS = int(os.environ.get("BA_BENCH_BOOTS", "3"))
MASTER_IP = "10.231.5.10"  # a bootstrap-agent master runs throughout: agents join an existing cluster
AGENT_IP = "10.231.5.21"
AWS_KEY, AWS_SECRET = "AKIDBENCH0001", "bench-secret-key-0123456789abcdefghij"
FILL = {
    "aws_access_key_id": AWS_KEY,
    "aws_secret_access_key": AWS_SECRET,
    "alluxio_ramfs_size_gb_std": "1",
    "master_private_ip": MASTER_IP,
    "alluxio_underfs_s3": "s3a://eo-bucket/cache",
    "alluxio_block_size": "64MB",
    "cluster_id": "eo-bench",
}
DROPPED = re.compile(r"^\s*- systemctl (start|enable) (docker|spark-shuffle)\s*$")
CLOUD_INIT_UNITS = ("cloud-init-local", "cloud-init", "cloud-config", "cloud-final")
ADAPTATIONS = (
    "image: a 'linux' user and /opt/alluxio/conf, /var/lib/docker, /var/lib/mesos, /var/log/mesos (the original "
    "image had them from its platform and packages)",
    "image: mesos-slave.service runs the Mesos stand-in as mesos-init-wrapper runs mesos-slave",
    "cloud-init: network config disabled, datasource NoCloud (the local cloud's networkd file configures host0)",
    "cloud-config: 'systemctl start|enable docker' and '... spark-shuffle' removed (no Docker in a container, "
    "no Spark shuffle service in this image)",
)

BENCH_LAYER = r"""
set -eu
export DEBIAN_FRONTEND=noninteractive
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 0755 /usr/sbin/policy-rc.d
apt-get update -o Acquire::Retries=3
apt-get install -y --no-install-recommends -o Acquire::Retries=3 cloud-init
apt-get clean
rm -f /usr/sbin/policy-rc.d
cat > /etc/cloud/cloud.cfg.d/90-bench.cfg <<'EOF'
datasource_list: [ NoCloud, None ]
network: {config: disabled}
EOF
id linux >/dev/null 2>&1 || useradd --create-home --shell /bin/bash linux
mkdir -p /opt/alluxio/conf /var/lib/docker /var/lib/mesos /var/log/mesos
cat > /etc/systemd/system/mesos-slave.service <<'EOF'
[Unit]
Description=Mesos agent, started as the original image's mesos-slave.service did (benchmark only)
Wants=network-online.target
After=network-online.target
[Service]
Type=exec
ExecStart=/bin/sh -c 'set -a; . /etc/default/mesos; . /etc/default/mesos-slave; set +a; \
    exec /opt/bootstrap-agent/venv/bin/python -m standins.mesos agent --mesos-version 1.11 \
    --ip="$IP" --log_dir="$LOGS"'
Restart=on-failure
EOF
rm -rf /var/lib/cloud/*
"""


def bench_image() -> Path:
    """The node image (Alluxio 1.8 stand-ins) + cloud-init, cached by the node digest and this layer's text."""
    node = LocalBuilder(NodeOptions(alluxio_version="1.8")).build()
    key = hashlib.sha256((node.digest + BENCH_LAYER).encode()).hexdigest()[:16]
    final = CACHE_ROOT / f"bench-{key}"
    if final.is_dir():
        return final
    with locked(CACHE_ROOT / ".lock", 1800):
        if final.is_dir():
            return final
        tmp = CACHE_ROOT / f".build-node-{key}-{os.getpid()}"  # a name the builder's stale-build sweep knows
        remove_tree(tmp)
        try:
            subprocess.run(["cp", "-a", "--", str(node.path), str(tmp)], check=True, timeout=600)
            with chroot_mounts(tmp, network=True):
                subprocess.run(["chroot", str(tmp), "/usr/bin/env", "-i", f"PATH={CHROOT_PATH}", "LC_ALL=C.UTF-8",
                                "sh", "-c", BENCH_LAYER], check=True, timeout=900, capture_output=True)
            os.rename(tmp, final)
        except BaseException:
            remove_tree(tmp)
            raise
    return final


def cloud_config() -> str:
    """The original agent cloud-config, filled in; only the documented lines removed."""
    text = SEED_CONFIG.read_text()
    for name, value in FILL.items():
        text = re.sub(r"\{\{\s*" + name + r"\s*\}\}", value, text)
    assert "{{" not in text, "a placeholder of the seed config is not filled in"
    kept = [line for line in text.splitlines() if not DROPPED.match(line)]
    assert len(text.splitlines()) - len(kept) == 4, "the docker and spark-shuffle lines changed in the seed"
    return "\n".join(kept) + "\n"


def agent_user_data(role: str = "agent") -> dict[str, Any]:
    return {
        "schema": 1, "cluster": "eo-bench", "role": role, "masters": [MASTER_IP],
        "secret": "bench-cluster-secret-0123456789",
        "mesos": {"version": "1.11", "containerizers": ["mesos"]},
        "alluxio": {"version": "1.8", "root_ufs": "s3://eo-bucket/cache", "block_size": "64MB",
                    "s3_endpoint": "https://obs.eu-de.otc.t-systems.com", "worker_ramdisk": "1GB"},
        "credentials": {"source": "keys", "access_key_id": AWS_KEY, "secret_access_key": AWS_SECRET},
    }


def entered(node: Container, unit: str) -> tuple[str, float]:
    out = node.systemctl("show", "--property=ActiveState,ActiveEnterTimestampMonotonic", f"{unit}.service").stdout
    props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return props.get("ActiveState", "?"), int(props.get("ActiveEnterTimestampMonotonic", "0") or 0) / 1e6


def measure(node: Container, configuring: str, services: tuple[str, ...]) -> float:
    """Seconds from systemd-nspawn's start until the config was written and every service started."""
    assert node.started_at is not None
    latest = 0.0
    for unit in (configuring, *services):
        state, at = entered(node, unit)
        assert state == "active" and at > 0, f"{unit} is {state}:\n{node.journal(unit, 30)}"
        latest = max(latest, at)
    return latest - node.started_at


@pytest.fixture(scope="module")
def image() -> Path:
    reason = ct.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    if not SEED_CONFIG.is_file():
        pytest.skip(f"{SEED_CONFIG} is not here")
    return bench_image()


@pytest.fixture
def metadata(test_network: TestNetwork, tmp_path: Path) -> Iterator[MetadataServer]:
    server = MetadataServer(test_network.metadata, bind=ct.METADATA_IP, port=80, workdir=tmp_path / "metadata")
    server.set_user_data(json.dumps(agent_user_data()).encode(), client_ip=AGENT_IP)
    server.set_user_data(json.dumps(agent_user_data("master")).encode(), client_ip=MASTER_IP)
    server.set_meta_data({"uuid": "bench-master", "name": "eo-bench-master", "availability_zone": "eu-de-01"},
                         client_ip=MASTER_IP)
    try:
        yield server.start()
    finally:
        server.close()


def boot_cloud_init(image: Path, net: TestNetwork, seed: Path, n: int) -> float:
    (seed / "user-data").write_text(cloud_config())
    (seed / "meta-data").write_text(f"instance-id: iid-bench-{n}\nlocal-hostname: eo-bench-agent-{n}\n")
    with Container(image, network=net, ip=AGENT_IP, bind_ro=[f"{seed}:/var/lib/cloud/seed/nocloud"],
                   boot_args=["systemd.mask=bootstrap-agent.service"], boot_timeout=180) as node:
        seconds = measure(node, "cloud-final", ("mesos-slave", "alluxio-worker", "alluxio-proxy", "nginx"))
        props = node.read_file("/opt/alluxio/conf/alluxio-site.properties")
        assert f"alluxio.master.hostname={MASTER_IP}" in props and f"alluxio.worker.hostname={AGENT_IP}" in props
        assert "MESOS_MASTER" in node.read_file("/etc/default/mesos-slave")
        output = node.read_file("/var/log/cloud-init-output.log")
        assert "mount: " not in output, f"a mount of the config failed in the container:\n{output[-2000:]}"
    return seconds


def boot_bootstrap_agent(image: Path, net: TestNetwork, n: int) -> float:
    masks = [f"systemd.mask={unit}.service" for unit in CLOUD_INIT_UNITS]
    with Container(image, network=net, ip=AGENT_IP, boot_args=masks, boot_timeout=180) as node:
        seconds = measure(node, "bootstrap-agent", ("mesos-agent", "alluxio-worker", "alluxio-proxy", "nginx"))
        props = node.read_file("/opt/alluxio/conf/alluxio-site.properties")
        assert f"alluxio.master.hostname={MASTER_IP}" in props and f"alluxio.worker.hostname={AGENT_IP}" in props
        assert node.systemctl("is-active", "cloud-final.service").stdout.strip() != "active"
    return seconds


def test_boot_to_configured_cloud_init_vs_bootstrap_agent(
    image: Path, test_network: TestNetwork, metadata: MetadataServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    seed = tmp_path / "nocloud"
    seed.mkdir()
    times: dict[str, list[float]] = {"cloud-init": [], "bootstrap-agent": []}
    masks = [f"systemd.mask={unit}.service" for unit in CLOUD_INIT_UNITS]
    master = Container(image, network=test_network, ip=MASTER_IP, boot_args=masks, boot_timeout=180).start()
    request.addfinalizer(master.stop)
    for n in range(1, BOOTS + 1):  # interleaved, so drift on the machine hits both sides alike
        for side in ("cloud-init", "bootstrap-agent"):
            meta = {"uuid": f"bench-agent-{side}-{n}", "name": f"eo-bench-agent-{n}", "availability_zone": "eu-de-01"}
            metadata.set_meta_data(meta, client_ip=AGENT_IP)
            started = time.monotonic()
            if side == "cloud-init":
                seconds = boot_cloud_init(image, test_network, seed, n)
            else:
                seconds = boot_bootstrap_agent(image, test_network, n)
            times[side].append(seconds)
            print(f"BENCH boot {side:15} #{n}: configured and services started {seconds:6.2f} s after "
                  f"systemd-nspawn started (container up and down: {time.monotonic() - started:.1f} s)")
    ci, ba = statistics.median(times["cloud-init"]), statistics.median(times["bootstrap-agent"])
    ratio = ci / ba
    print(f"BENCH boot medians over {BOOTS} boots: cloud-init {ci:.2f} s, bootstrap-agent {ba:.2f} s, "
          f"ratio {ratio:.1f}x ({'aim of 5x met' if ratio >= 5 else 'aim of 5x NOT met'})")
    print("BENCH adaptations: " + "; ".join(ADAPTATIONS))
    shutil.rmtree(seed, ignore_errors=True)
    assert ba < ci, "bootstrap-agent must at least be faster"
