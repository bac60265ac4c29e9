"""The OTC fake's building blocks, shared by ``fake_otc.py`` (IAM, VPC, ECS), ``fake_otc_as.py`` (AS, SMN) and
``fake_otc_images.py`` (IMS): the project's ids, a recorded request, an error answer, a resource that moves on
as it is polled. ``fake_otc`` re-exports them, so ``from tests.support.fake_otc import Reject`` keeps working.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

REGION = "eu-de"
PROJECT_ID = "0a1b2c3d4e5f40718293a4b5c6d7e8f9"


class Reject(Exception):
    """Answer the current request with an error (and maybe record a contract violation)."""

    def __init__(self, status: int, code: str, message: str, violation: bool = False) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.violation = status, code, message, violation


@dataclass
class Recorded:
    method: str
    url: str
    service: str
    path: str
    query: dict[str, str]
    body: Any
    status: int = 0


@dataclass
class Failure:
    method: str
    pattern: re.Pattern[str]
    status: int
    code: str
    message: str
    when: str  # "before" | "after"
    times: int = 1
    skip: int = 0


@dataclass
class Res:
    """A resource with a status that moves on as it is polled."""

    data: dict[str, Any]
    pending: list[tuple[int, Callable[[], None]]] = field(default_factory=list)  # (polls left, action)

    def poll(self) -> None:
        if self.pending:
            left, action = self.pending[0]
            if left <= 0:
                self.pending.pop(0)
                action()
            else:
                self.pending[0] = (left - 1, action)


def _get(body: Any, path: str) -> Any:
    node = body
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if part.startswith("["):
            index = int(part[1:-1])
            if not isinstance(node, list) or len(node) <= index:
                return None
            node = node[index]
        else:
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
    return node


class FakeOtcState:
    """What ``FakeOtc`` holds (set in its ``__init__``), declared once for its service mixins
    (``fake_otc_vpc``, ``fake_otc_ecs``, ``fake_otc_as``)."""

    delay: int
    group_initial_status: str
    ids: itertools.count[int]
    vpcs: dict[str, Res]
    subnets: dict[str, Res]
    sgs: dict[str, Res]
    servers: dict[str, Res]
    ports: dict[str, str]  # port id -> server id
    jobs: dict[str, Res]
    eips: dict[str, Res]
    configs: dict[str, Res]
    groups: dict[str, Res]
    user_data: dict[str, dict[str, Any]]
    job_failures: list[str]
    flavors: list[dict[str, Any]]
    topics: dict[str, dict[str, Any]]
    hooks: dict[str, dict[str, dict[str, Any]]]
    hanging: dict[str, dict[str, Any]]
    callbacks: list[dict[str, Any]]
    removing: dict[str, int]
