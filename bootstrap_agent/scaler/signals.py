"""What the scaler measures, and how one noisy sample becomes a signal worth acting on.

A ``Sample`` is one look at the leading Mesos master (``/metrics/snapshot``: ``master/cpus_used`` against
``master/cpus_total``, the same for ``mem``, ``master/outstanding_offers``, ``master/frameworks_active``; the
names of Mesos 1.11's ``src/master/metrics.cpp``), the frameworks that wait with nothing allocated (from
``/master/frameworks``), and optionally Alluxio's capacity (bytes used against the workers' total).

Smoothing is a plain window mean over the last ``window`` seconds, not an EWMA: a window has a length an
operator can reason about ("two minutes of load above 80 %"), it forgets a spike completely once the spike
leaves it, and clusterman's signals do the same (``period_minutes`` of metrics, averaged). The starvation
signal is not averaged but required to hold in *every* sample of the window: one sample with no offers out
is the allocator between two rounds, a whole window of them is a framework that cannot get anything.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Sample:
    at: float  # epoch seconds (the scaler's clock)
    cpus_total: float
    cpus_used: float
    mem_total: float
    mem_used: float
    outstanding_offers: int = 0
    frameworks_active: int = 0
    frameworks_starved: int = 0  # active, nothing allocated (see ``starved_frameworks``)
    alluxio_used: int | None = None
    alluxio_total: int | None = None

    @property
    def allocation(self) -> float:
        """The more constrained of cpus and memory (clusterman's "most constrained resource"); 0 when the
        cluster has no agents (nothing is allocated of nothing)."""
        pairs = ((self.cpus_used, self.cpus_total), (self.mem_used, self.mem_total))
        fractions = [used / total for used, total in pairs if total > 0]
        return max(fractions, default=0.0)

    @property
    def alluxio_use(self) -> float | None:
        if self.alluxio_used is None or not self.alluxio_total:
            return None
        return self.alluxio_used / self.alluxio_total


@dataclass(frozen=True)
class Smoothed:
    """The window's view: what a decision reads, and what its event shows."""

    allocation: float  # window mean of Sample.allocation
    raw_allocation: float  # the newest sample's, for the event
    cpus: float
    mem: float
    outstanding_offers: int  # the newest sample's
    frameworks_active: int
    starved: bool  # every sample of the window had a starving framework and no offer out
    alluxio_use: float | None
    samples: int

    def values(self) -> dict[str, Any]:
        """The signal values for an event line (rounded: they are read by people)."""
        out = asdict(self)
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}


def _number(metrics: Mapping[str, Any], key: str) -> float:
    value = metrics.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"metrics: {key} is not a number: {value!r}")
    return float(value)


def starved_frameworks(frameworks: Mapping[str, Any]) -> int:
    """Active frameworks with nothing allocated, from ``/master/frameworks`` (``frameworks[].active``,
    ``used_resources``, ``offered_resources``): one holding an offer is not starving, it is choosing."""
    count = 0
    for framework in frameworks.get("frameworks", []) or []:
        if not isinstance(framework, Mapping) or not framework.get("active"):
            continue
        used = framework.get("used_resources") or {}
        offered = framework.get("offered_resources") or {}
        holding = bool(framework.get("offers")) or any(float(r.get(k, 0) or 0) > 0 for r in (used, offered)
                                                       for k in ("cpus", "mem"))
        if not holding:
            count += 1
    return count


def sample_from(metrics: Mapping[str, Any], at: float, *, starved: int = 0,
                alluxio: tuple[int, int] | None = None) -> Sample:
    """A ``Sample`` from a ``/metrics/snapshot`` document; ``ValueError`` (one line) when a value is garbage."""
    return Sample(
        at=at,
        cpus_total=_number(metrics, "master/cpus_total"),
        cpus_used=_number(metrics, "master/cpus_used"),
        mem_total=_number(metrics, "master/mem_total"),
        mem_used=_number(metrics, "master/mem_used"),
        outstanding_offers=int(_number(metrics, "master/outstanding_offers")),
        frameworks_active=int(_number(metrics, "master/frameworks_active")),
        frameworks_starved=starved,
        alluxio_used=None if alluxio is None else alluxio[0],
        alluxio_total=None if alluxio is None else alluxio[1],
    )


def window(samples: Sequence[Sample], now: float, seconds: float) -> list[Sample]:
    """The samples of the last ``seconds`` (a sample from the future, a clock step, counts as now)."""
    return [s for s in samples if s.at > now - seconds]


def smooth(samples: Sequence[Sample], now: float, seconds: float) -> Smoothed | None:
    """The window mean; None without a sample in the window (no signal: no decision)."""
    recent = sorted(window(samples, now, seconds), key=lambda s: s.at)
    if not recent:
        return None
    newest = recent[-1]
    count = len(recent)

    def mean(values: Sequence[float]) -> float:
        return sum(values) / count

    uses = [s.alluxio_use for s in recent]
    alluxio = None if any(u is None for u in uses) else mean([u for u in uses if u is not None])
    return Smoothed(
        allocation=mean([s.allocation for s in recent]),
        raw_allocation=newest.allocation,
        cpus=mean([s.cpus_used / s.cpus_total if s.cpus_total else 0.0 for s in recent]),
        mem=mean([s.mem_used / s.mem_total if s.mem_total else 0.0 for s in recent]),
        outstanding_offers=newest.outstanding_offers,
        frameworks_active=newest.frameworks_active,
        starved=all(s.frameworks_starved > 0 and s.outstanding_offers == 0 for s in recent),
        alluxio_use=alluxio,
        samples=count,
    )
