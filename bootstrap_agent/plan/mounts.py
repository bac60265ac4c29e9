"""The RAM folders' tmpfs mount units: their systemd names and how each folder is mounted."""

from __future__ import annotations

import posixpath

from bootstrap_agent.desired import DesiredService, text_file
from bootstrap_agent.layout import Layout
from bootstrap_agent.node_paths import ALLUXIO_TIER0, DOCKER_DATA_ROOT, MESOS_WORK_DIR, UNIT_DIR
from bootstrap_agent.plan.part import Part
from bootstrap_agent.sizes import MiB, format_size
from bootstrap_agent.templates import render

# Alluxio's tier 0 is only ever read and written as files by the worker and by local clients' short-circuit
# reads: no executables, no devices. Mesos runs fetched executors from its work_dir and Docker keeps image layers
# (with setuid binaries and device nodes) in its data-root: those stay exec/suid/dev. 0710 for Docker, as dockerd
# sets it itself.
MOUNT_OPTIONS = {
    ALLUXIO_TIER0: ("0755", "nosuid,nodev,noexec"),
    MESOS_WORK_DIR: ("0755", ""),
    DOCKER_DATA_ROOT: ("0710", ""),
}


def mount_unit_name(path: str) -> str:
    """The mount unit systemd expects for ``path``: ``systemd-escape --path --suffix=mount`` in Python.

    systemd refuses a mount unit whose name does not match its ``Where=``, so the rules are systemd's own:
    surrounding and repeated slashes dropped, ``/`` becomes ``-``, every byte outside ``[A-Za-z0-9:_.]`` (and a
    leading ``.``) becomes ``\\xNN``, and the root is ``-``.
    """
    parts = [p for p in path.split("/") if p]
    if not parts:
        return "-.mount"
    out = []
    for index, ch in enumerate("/".join(parts).encode("utf-8")):
        char = chr(ch)
        if char == "/":
            out.append("-")
        elif (char.isascii() and (char.isalnum() or char in ":_.")) and not (index == 0 and char == "."):
            out.append(char)
        else:
            out.append(f"\\x{ch:02x}")
    return "".join(out) + ".mount"


def mount(folder: str, size: int, layout: Layout) -> Part:
    """A tmpfs mount unit for ``folder`` when ``size`` says so (empty otherwise); its ``units`` are what the
    services on the folder ``require``.

    The unit is named after the folder on the node (``var-lib-mesos.mount``), which is its systemd name on a
    real node (root ``/``); ``Where=`` carries the layout's path, so the process manager (which only creates the
    folder) works below ``--root`` too.
    """
    if not size:
        return Part()
    unit = mount_unit_name(folder)
    mode, extra = MOUNT_OPTIONS[folder]
    options = f"size={size // MiB}m,mode={mode}" + (f",{extra}" if extra else "")
    unit_file = posixpath.join(UNIT_DIR, unit)
    content = render("tmpfs.mount.j2", where=layout.path(folder), options=options, size=format_size(size))
    return Part((text_file(unit_file, content),),
                (DesiredService(unit, (unit_file,), (), reload=True, unit_file=unit_file),))
