"""How the ``process`` service manager runs each unit: a table of unit name → command builder.

The product's own table knows only what the product itself runs for real: ZooKeeper and nginx. Everything else
on a node (Mesos, Alluxio, Spark's shuffle service, dockerd, Zeppelin, Jenkins) runs under the process manager
only as a stand-in, and the stand-ins are a distribution of their own (``standins/``): they register their
table under the entry point group ``bootstrap_agent.process_commands``, so the agent never imports them and a
real image, which lacks them, simply has no command for those units.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib.metadata import entry_points

from bootstrap_agent.desired import DesiredService
from bootstrap_agent.layout import Layout
from bootstrap_agent.node_paths import ZOO_CFG
from bootstrap_agent.services.zookeeper_cmd import java_command

#: argv and the ``EnvironmentFile=``s of a unit, mirroring ``ExecStart=``/``EnvironmentFile=`` of its unit file.
Command = tuple[list[str], list[str]]
CommandBuilder = Callable[[DesiredService, Layout], Command]
CommandTable = Mapping[str, CommandBuilder]
#: The entry point group through which other distributions (the stand-ins) add to the table.
ENTRY_POINT_GROUP = "bootstrap_agent.process_commands"


def zookeeper(service: DesiredService, layout: Layout) -> Command:
    return java_command(layout.path(ZOO_CFG)), []


def nginx(service: DesiredService, layout: Layout) -> Command:
    prefix = layout.path("/etc/nginx")
    return ["nginx", "-p", prefix + "/", "-c", f"{prefix}/nginx.conf", "-g", "daemon off;"], []


#: What the product itself can run without systemd.
PRODUCT_COMMANDS: CommandTable = {"zookeeper": zookeeper, "nginx": nginx}


def process_commands() -> dict[str, CommandBuilder]:
    """The product's table, extended by every installed ``bootstrap_agent.process_commands`` entry point (a
    function returning a table). The product's own entries win: a plugin adds units, it does not replace them."""
    table: dict[str, CommandBuilder] = {}
    for entry in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        table.update(entry.load()())
    table.update(PRODUCT_COMMANDS)
    return table
