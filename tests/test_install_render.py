"""Installing files like a careful operator, and `bootstrap-agent render`, on the real filesystem."""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import subprocess
import sys
import threading
from pathlib import Path

from bootstrap_agent.desired import DesiredFile
from bootstrap_agent.install import install
from bootstrap_agent.layout import Layout

EXAMPLES = Path(__file__).resolve().parents[1] / "bootstrap_agent" / "examples"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_install_creates_backs_up_and_leaves_unchanged_files_alone(tmp_path: Path) -> None:
    layout = Layout(str(tmp_path))
    first = DesiredFile("/etc/app/app.conf", b"a=1\n", 0o640)
    assert install([first], layout).changed == ["/etc/app/app.conf"]
    target = tmp_path / "etc/app/app.conf"
    assert target.read_bytes() == b"a=1\n" and mode(target) == 0o640
    mtime = target.stat().st_mtime_ns

    assert install([first], layout).changed == []
    assert target.stat().st_mtime_ns == mtime

    second = DesiredFile("/etc/app/app.conf", b"a=2\n", 0o640)
    assert install([second], layout).changed == ["/etc/app/app.conf"]
    assert target.read_bytes() == b"a=2\n"
    assert (tmp_path / "etc/app/app.conf.bak").read_bytes() == b"a=1\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["app.conf", "app.conf.bak"]  # nothing staged left

    # A mode change alone is a change too (a secret file that became world-readable gets fixed).
    os.chmod(target, 0o644)
    assert install([second], layout).changed == ["/etc/app/app.conf"]
    assert mode(target) == 0o640


def test_a_file_rewritten_in_place_with_its_old_size_and_mtime_is_still_restored(tmp_path: Path) -> None:
    """The skip of an unchanged file's read-back (the same content object as last pass) must not be fooled by a
    rewrite that keeps the inode and size and puts the mtime back: the ctime moved."""
    layout = Layout(str(tmp_path))
    desired = DesiredFile("/etc/app/app.conf", b"role=agent\n", 0o644)
    assert install([desired], layout).changed == ["/etc/app/app.conf"]
    target = tmp_path / "etc/app/app.conf"
    before = target.stat()
    with open(target, "r+b") as handle:  # same inode, same size
        handle.write(b"role=mastr\n")
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert target.stat().st_ino == before.st_ino and target.stat().st_mtime_ns == before.st_mtime_ns

    assert install([desired], layout).changed == ["/etc/app/app.conf"]
    assert target.read_bytes() == b"role=agent\n"
    assert install([desired], layout).changed == []  # and then skipped again


def test_secret_file_is_never_visible_with_a_wider_mode(tmp_path: Path) -> None:
    """Watch the folder while a 0600 file is installed: no name in it ever has other permissions."""
    layout = Layout(str(tmp_path))
    folder = tmp_path / "opt/alluxio/conf"
    folder.mkdir(parents=True)
    seen: set[int] = set()
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            for entry in os.scandir(folder):
                with contextlib.suppress(FileNotFoundError):
                    seen.add(stat.S_IMODE(entry.stat(follow_symlinks=False).st_mode))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for i in range(200):
            install([DesiredFile("/opt/alluxio/conf/site.properties", f"k={i}\n".encode() * 500, 0o600)], layout)
    finally:
        stop.set()
        watcher.join()
    assert seen == {0o600}


def test_failed_check_keeps_the_old_file(tmp_path: Path) -> None:
    layout = Layout(str(tmp_path))
    good = DesiredFile("/etc/nginx/conf.d/dash.conf", b"server { listen 127.0.0.1:18080; }\n", 0o644, check="nginx")
    assert install([good], layout).changed == ["/etc/nginx/conf.d/dash.conf"]
    broken = DesiredFile("/etc/nginx/conf.d/dash.conf", b"server { listen 127.0.0.1:18080;\n", 0o644, check="nginx")
    other = DesiredFile("/etc/other.conf", b"x\n")
    result = install([broken, other], layout)
    reason = result.failed["/etc/nginx/conf.d/dash.conf"]
    assert "nginx check failed" in reason and "unexpected end of file" in reason
    assert not re.search(r"\d{4}/\d\d/\d\d|\d+#\d+", reason)  # the same words on every retry
    assert result.changed == ["/etc/other.conf"]  # one bad file does not stop the others
    target = tmp_path / "etc/nginx/conf.d/dash.conf"
    assert target.read_bytes() == good.content
    assert sorted(p.name for p in target.parent.iterdir()) == ["dash.conf"]


def render(tmp_path: Path, role: str, out: Path, user_data: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bootstrap_agent.cli", "render",
         "--user-data", str(user_data or EXAMPLES / f"{role}.json"),
         "--facts", str(EXAMPLES / f"facts-{role}.json"), "--out", str(out)],
        capture_output=True, text=True, timeout=60,
    )


def test_a_failed_rename_leaves_nothing_staged(tmp_path: Path) -> None:
    """The backup cannot be renamed into place (a folder sits at ``<name>.bak``): the install fails for that file,
    the old file stays, and neither the staged copy nor the staged backup is left in the folder."""
    layout = Layout(str(tmp_path))
    target = tmp_path / "etc/default/mesos-agent"
    target.parent.mkdir(parents=True)
    target.write_text("old\n")
    (tmp_path / "etc/default/mesos-agent.bak").mkdir()
    (tmp_path / "etc/default/mesos-agent.bak/occupied").write_text("")
    result = install([DesiredFile("/etc/default/mesos-agent", b"new\n", 0o644)], layout)
    assert list(result.failed) == ["/etc/default/mesos-agent"]
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["mesos-agent", "mesos-agent.bak"]


def test_render_writes_what_once_would_install(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = render(tmp_path, "master", out)
    assert result.returncode == 0, result.stderr
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == [
        "etc/default/alluxio", "etc/default/mesos-master", "etc/hosts",
        "etc/nginx/conf.d/bootstrap-agent-dashboard.conf",
        "etc/nginx/tls/bootstrap-agent-dashboard.crt", "etc/nginx/tls/bootstrap-agent-dashboard.key",
        "etc/spark/aws-credentials", "etc/spark/conf/spark-defaults.conf", "etc/spark/conf/spark-env.sh",
        "etc/zookeeper/conf/zoo.cfg", "opt/alluxio/conf/alluxio-site.properties", "services.json",
        "var/lib/bootstrap-agent/www/index.html", "var/lib/bootstrap-agent/www/prometheus/targets.json",
        "var/lib/bootstrap-agent/www/status.json", "var/lib/zookeeper/data/myid",
    ]
    assert mode(out / "opt/alluxio/conf/alluxio-site.properties") == 0o600
    assert mode(out / "etc/spark/aws-credentials") == 0o600  # the S3 keys, for root's spark-shell
    assert mode(out / "etc/nginx/tls/bootstrap-agent-dashboard.key") == 0o600
    assert "dataDir=/var/lib/zookeeper/data\n" in (out / "etc/zookeeper/conf/zoo.cfg").read_text()  # node paths
    services = json.loads((out / "services.json").read_text())
    assert services["start"] == ["zookeeper", "mesos-master", "alluxio-master", "alluxio-proxy", "alluxio-job-master",
                                 "nginx"]
    assert services["restart"] == []
    secret = json.loads((EXAMPLES / "master.json").read_text())["credentials"]["secret_access_key"]
    assert secret not in result.stderr + result.stdout

    # Rendering a changed user-data into the same folder tells which units a node would restart.
    changed = json.loads((EXAMPLES / "master.json").read_text())
    changed["alluxio"]["block_size"] = "8MB"
    path = tmp_path / "changed.json"
    path.write_text(json.dumps(changed))
    assert render(tmp_path, "master", out, path).returncode == 0
    assert json.loads((out / "services.json").read_text())["restart"] == ["alluxio-master", "alluxio-proxy",
                                                                          "alluxio-job-master"]


def test_render_refuses_invalid_input_and_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    data = json.loads((EXAMPLES / "agent.json").read_text())
    data["alluxio"]["worker_ramdisk"] = "64GB"  # the example agent has 32 GB
    bad.write_text(json.dumps(data))
    out = tmp_path / "out"
    result = render(tmp_path, "agent", out, bad)
    assert result.returncode == 2
    assert "alluxio.worker_ramdisk" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


def test_render_into_a_relative_folder_checks_the_master_with_its_own_certificate(tmp_path: Path) -> None:
    """``--out out`` from the user's folder: the nginx check must find the pair rendered beside its config."""
    result = subprocess.run(
        [sys.executable, "-m", "bootstrap_agent.cli", "render", "--user-data", str(EXAMPLES / "master.json"),
         "--facts", str(EXAMPLES / "facts-master.json"), "--out", "rendered/out"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    out = tmp_path / "rendered/out"
    assert (out / "etc/nginx/conf.d/bootstrap-agent-dashboard.conf").is_file()
    assert (out / "services.json").is_file()
    assert sorted(p.name for p in out.parent.iterdir()) == ["out"]  # no staging folder left beside it
    assert result.stderr == ""  # no log lines unless asked (--verbose / --log-format json)


def test_a_render_refused_by_a_check_leaves_the_previous_tree_whole(tmp_path: Path) -> None:
    """A certificate nginx cannot load: exit 2, one line, and DIR is exactly what it was (the agent's render
    before, so nothing of the master's may appear in it); nothing is left beside it."""
    out = tmp_path / "out"
    assert render(tmp_path, "agent", out).returncode == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    bad = json.loads((EXAMPLES / "master.json").read_text())
    bad["dashboard"] = {**bad.get("dashboard", {}), "tls_certificate": "-----BEGIN CERTIFICATE-----\nQUJD\n"
                        "-----END CERTIFICATE-----\n", "tls_key": "-----BEGIN PRIVATE KEY-----\nQUJD\n"
                        "-----END PRIVATE KEY-----\n"}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    result = render(tmp_path, "master", out, path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("bootstrap-agent: ") and result.stderr.count("\n") == 1, result.stderr
    assert "nginx" in result.stderr and "Traceback" not in result.stderr
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.json", "out"]
