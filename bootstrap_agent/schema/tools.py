"""The ``spark``, ``zeppelin`` and ``jenkins`` sections: the optional programs beside Mesos and Alluxio."""

from __future__ import annotations

import json
from typing import Any

from bootstrap_agent.errors import InvalidInput
from bootstrap_agent.schema.readers import read_bool, read_object
from bootstrap_agent.schema.settings import DashboardSettings, SparkSettings, ToolSettings

SPARK_KEYS = frozenset({"shuffle_service", "shuffle_port"})
TOOL_KEYS = frozenset({"enabled"})


def parse_spark(value: Any) -> SparkSettings:
    obj = read_object(value, "spark", SPARK_KEYS)
    enabled = read_bool(obj.get("shuffle_service", True), "spark.shuffle_service")
    port = obj.get("shuffle_port", SparkSettings.shuffle_port)
    if type(port) is not int or not 1024 <= port <= 65535:
        raise InvalidInput("spark.shuffle_port", f"expected a port number 1024-65535, got {json.dumps(port)}")
    return SparkSettings(enabled, port)


def parse_tool(value: Any, name: str) -> ToolSettings:
    obj = read_object(value, name, TOOL_KEYS)
    return ToolSettings(read_bool(obj.get("enabled", False), f"{name}.enabled"))


def check_tools(dashboard: DashboardSettings, tools: dict[str, ToolSettings]) -> None:
    """Both tools run code on the cluster for whoever reaches them: never without the dashboard's password."""
    for name, tool in tools.items():
        if tool.enabled and not dashboard.auth:
            raise InvalidInput(f"{name}.enabled", f"{name} runs code on the cluster and is reached only through "
                               "the dashboard: it cannot be enabled with dashboard.auth false")
