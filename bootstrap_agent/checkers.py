"""Checks run on a staged file before it replaces the live one.

consul-template's users asked for this for years (#1060): a config that the service itself rejects must
never be installed, because the next restart would take the service down. Each checker gets the staged
path and returns ``None`` when fine, or the checker's own complaint.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

Checker = Callable[[Path], "str | None"]


def check_nginx(staged: Path) -> str | None:
    """``nginx -t`` on a throw-away main config that includes only the staged server block."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    with tempfile.TemporaryDirectory(prefix="ba-nginx-check-") as tmp:
        main = Path(tmp, "nginx.conf")
        main.write_text(
            f"pid {tmp}/nginx.pid;\nerror_log stderr;\nevents {{}}\nhttp {{\n"
            f"  client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy;\n"
            f"  fastcgi_temp_path {tmp}/fastcgi; uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;\n"
            f"  access_log off;\n  include {staged};\n}}\n"
        )
        try:
            result = subprocess.run(
                [nginx, "-t", "-q", "-p", tmp, "-c", str(main)],
                capture_output=True, text=True, timeout=30, check=False,
            )
        except FileNotFoundError:
            return "nginx is not installed, cannot check the configuration"
        except subprocess.TimeoutExpired:
            return "nginx -t did not finish within 30 s"
    if result.returncode != 0:
        lines = [line for line in result.stderr.splitlines() if "[emerg]" in line]
        if lines and all(_NOT_LOCAL in line for line in lines):
            return None
        return (lines[0] if lines else result.stderr.strip() or "nginx -t failed").replace(str(staged), "<staged>")
    return None


# nginx -t binds the listen addresses after parsing everything. ``render`` on a workstation checks a master's
# config whose address is not local there: the syntax is fine, and on the node itself the address is local
# by construction (facts come from its own interfaces), so this one complaint is not a configuration error.
_NOT_LOCAL = "(99: Cannot assign requested address)"


CHECKERS: dict[str, Checker] = {"nginx": check_nginx}
