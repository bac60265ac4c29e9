"""``bootstrap-agent render --out DIR``: the files ``once`` would install, under DIR, and nothing else.

Rendered into a folder beside DIR and renamed over it at the end, so DIR holds either the previous render or
the complete new one: a refused input, a file its program refuses (``nginx -t``) or a full disk never leave a
partial tree. DIR is made absolute first, because the checks run the real programs against the staged files
with paths under it, and nginx resolves a relative path against its own prefix, not our working folder.
Exit 0, or 2 with one line (nothing changed): that is the whole contract, so scripts need no third case.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from bootstrap_agent.desired import Plan
from bootstrap_agent.layout import Layout

EXIT_OK, EXIT_INVALID = 0, 2


class RenderRefused(Exception):
    """Input or a rendered file that cannot be used: one line, DIR unchanged."""


def render(plan_of: Any, out: Path) -> None:
    """Plan with ``plan_of(previous_root)`` (the previous render may hold the master's TLS pair), render into a
    staging folder beside ``out`` and swap it in; ``RenderRefused`` leaves ``out`` as it was."""
    out = out.absolute()
    if out.exists() and not out.is_dir():
        raise RenderRefused(f"--out {out}: exists and is not a folder")
    desired: Plan = plan_of(Layout(str(out)))
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.render-", dir=out.parent))
    try:
        if out.is_dir():
            shutil.copytree(out, staging, symlinks=True, dirs_exist_ok=True, copy_function=_copy_with_owner)
        _write(desired, staging)
        _swap(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _write(desired: Plan, staging: Path) -> None:
    from bootstrap_agent.install import install, write_atomic

    layout = Layout(str(staging))
    existed = {f.path for f in desired.files if Path(layout.path(f.path)).exists()}
    try:
        result = install(desired.files, layout)
    except OSError as exc:
        raise RenderRefused(f"cannot write below {staging.parent}: {exc.strerror or exc}") from None
    if result.failed:
        path, reason = next(iter(result.failed.items()))
        more = f" (and {len(result.failed) - 1} more)" if len(result.failed) > 1 else ""
        raise RenderRefused(f"{path}: {reason}{more}; nothing written")
    rewritten = existed & set(result.changed)
    services = {
        "enable": [s.unit for s in desired.services],
        "start": [s.unit for s in desired.services],
        # like once: a unit restarts when a file it had already read changed
        "restart": [s.unit for s in desired.services if rewritten & set(s.inputs)],
        "services": [
            {"unit": s.unit, "inputs": list(s.inputs), "ports": [f"{h}:{p}" for h, p in s.ports],
             "reload": s.reload, "version": s.version}
            for s in desired.services
        ],
    }
    write_atomic(Path(layout.path("/services.json")), (json.dumps(services, indent=2) + "\n").encode())


def _swap(staging: Path, out: Path) -> None:
    """``staging`` becomes ``out``; a previous ``out`` is moved aside first and removed after."""
    if not out.exists():
        os.chmod(staging, 0o755)  # mkdtemp made it 0700; a rendered tree is read like a node's /
        os.rename(staging, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    os.rmdir(old)
    os.rename(out, old)
    try:
        os.rename(staging, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _copy_with_owner(source: str, target: str) -> None:
    """Copy content, mode and (where allowed) owner: an unchanged file must compare as unchanged."""
    shutil.copy2(source, target, follow_symlinks=False)
    info = os.lstat(source)
    with contextlib.suppress(OSError):
        os.lchown(target, info.st_uid, info.st_gid)
