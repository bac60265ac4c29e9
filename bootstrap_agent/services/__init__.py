"""The service managers behind one interface (``base.ServiceManager``): ``systemd`` on nodes, ``process`` for
tests and machines without systemd. Each is imported only when chosen: the process manager pulls psutil."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bootstrap_agent.layout import Layout
    from bootstrap_agent.services.base import ServiceManager


def make_manager(name: str, layout: Layout) -> ServiceManager:
    """The manager the command line names (``--service-manager``)."""
    if name == "process":
        from bootstrap_agent.services.commands import process_commands
        from bootstrap_agent.services.process import ProcessManager

        return ProcessManager(layout, process_commands())  # the product's commands and the stand-ins', if installed
    from bootstrap_agent.services.systemd import SystemdManager

    return SystemdManager()
