"""Checks run on a staged file before it replaces the live one.

consul-template's users asked for this for years (#1060): a config that the service itself rejects must
never be installed, because the next restart would take the service down. Each checker gets the staged
path and returns ``None`` when fine, or the checker's own complaint.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

Checker = Callable[[Path, str], "str | None"]

_FILE_DIRECTIVE = re.compile(r"^(\s*(?:ssl_certificate|ssl_certificate_key|auth_basic_user_file)\s+)(/\S+);",
                             re.MULTILINE)


def _files_below(text: str, root: str) -> str:
    """Point the files a server block loads at where they are installed when that is below ``root``
    (``render --out DIR`` keeps node paths in the content but puts the files under DIR)."""
    def where(match: re.Match[str]) -> str:
        path = match.group(2)
        below = os.path.join(root, path.lstrip("/"))
        return match.group(0) if os.path.exists(path) or not os.path.exists(below) else f"{match.group(1)}{below};"
    return _FILE_DIRECTIVE.sub(where, text)


def check_nginx(staged: Path, root: str = "/") -> str | None:
    """``nginx -t`` on a throw-away main config that includes only the staged server block."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    with tempfile.TemporaryDirectory(prefix="ba-nginx-check-") as tmp:
        checked = Path(tmp, "server.conf")
        checked.write_text(_files_below(staged.read_text(), root))
        main = Path(tmp, "nginx.conf")
        main.write_text(
            f"pid {tmp}/nginx.pid;\nerror_log stderr;\nevents {{}}\nhttp {{\n"
            f"  client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy;\n"
            f"  fastcgi_temp_path {tmp}/fastcgi; uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;\n"
            f"  access_log off;\n  include {checked};\n}}\n"
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
        reason = lines[0] if lines else result.stderr.strip() or "nginx -t failed"
        # Without nginx's timestamp and pid the reason is the same on every retry: it is reported in the member
        # znode, and a reason that changed each pass would wake the watching master each pass.
        return _LOG_PREFIX.sub("", reason).replace(str(checked), "<staged>")
    return None


# nginx -t binds the listen addresses after parsing everything. ``render`` on a workstation checks a master's
# config whose address is not local there: the syntax is fine, and on the node itself the address is local
# by construction (facts come from its own interfaces), so this one complaint is not a configuration error.
_NOT_LOCAL = "(99: Cannot assign requested address)"
_LOG_PREFIX = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[emerg\] \d+#\d+: ")


CHECKERS: dict[str, Checker] = {"nginx": check_nginx}
