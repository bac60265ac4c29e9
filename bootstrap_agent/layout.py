"""Where the node's tree is: one value every module that touches the node's files takes."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass


@dataclass(frozen=True)
class Layout:
    """Where the node's tree is: ``/`` on a real node, a temporary folder in tests and the process manager.

    Paths written *inside* files (ZooKeeper's dataDir, Mesos' work_dir) go through ``path()`` too, so a node
    run under ``--root`` never touches the host's own ``/var/lib``.
    """

    root: str = "/"

    def path(self, node_path: str) -> str:
        return posixpath.normpath(posixpath.join(self.root, node_path.lstrip("/")))
