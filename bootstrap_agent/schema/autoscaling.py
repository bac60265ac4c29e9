"""The ``autoscaling`` section (masters only): the policy of the cluster's scaler (``bootstrap_agent.scaler``).

Off by default. Every rule a policy could break is checked here, before a scaler exists: a band whose scale-in
threshold is not below its scale-out threshold would make the group chase itself, ``min`` above ``max`` has no
answer, and a cooldown of zero is no cooldown (a workload faster than the scaler would make the group
oscillate). The provisioner fills ``min``/``max`` from the cluster file's ``agents`` and checks that they stay
inside them; on the node they are required whenever the scaler is enabled, so no default can cross the group's
own limits. Durations are whole seconds, like ``drain``'s. ``endpoint`` and ``group`` name the AS API and the
agents' group the scaler acts on (the agents' ``lifecycle`` has the same two); ``provision-min`` fills them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from bootstrap_agent.errors import InvalidInput
from bootstrap_agent.schema.lifecycle import AS_PATH, GROUP_NAME
from bootstrap_agent.schema.readers import kind, read_bool, read_object, read_string, read_url

AUTOSCALING_KEYS = frozenset({
    "enabled", "scale_out_above", "scale_in_below", "min", "max", "max_step", "cooldown_out", "cooldown_in",
    "idle_before_removal", "interval", "window", "join_timeout", "alluxio_above", "endpoint", "group",
})
MAX_SECONDS = 86_400  # a day: anything longer is a typo (milliseconds?), not a policy


@dataclass(frozen=True)
class AutoscalingSettings:
    """The scaler's policy. Fractions are of the cluster's total (allocated cpus or memory / offered)."""

    enabled: bool = False
    scale_out_above: float = 0.8
    scale_in_below: float = 0.4
    min: int = 0
    max: int = 0
    max_step: int = 2  # agents added or removed per decision at most (clusterman's max_weight_to_add/remove)
    cooldown_out: int = 300  # seconds after a scale-out before the next one
    cooldown_in: int = 600  # seconds after any change before a scale-in (cluster-autoscaler's delay-after-add)
    idle_before_removal: int = 600  # an agent must run no task this long (cluster-autoscaler's unneeded time)
    interval: int = 15  # seconds between samples
    window: int = 120  # seconds of samples averaged (the smoothing window)
    join_timeout: int = 600  # how long added agents may take to become ready before the scaler stops waiting
    alluxio_above: float | None = None  # Alluxio capacity use above this also scales out; None: not a signal
    endpoint: str | None = None  # the AS API (``.../autoscaling-api/v1/<project_id>``), filled by provision-min
    group: str | None = None  # the agents' AS group by name, filled by provision-min

    @property
    def setpoint(self) -> float:
        """The allocation a decision aims at: the middle of the band (clusterman's setpoint)."""
        return (self.scale_out_above + self.scale_in_below) / 2


def parse_autoscaling(value: Any, role: str = "master") -> AutoscalingSettings:
    """The section as the user wrote it, or one ``InvalidInput`` line naming the field."""
    obj = read_object(value, "autoscaling", AUTOSCALING_KEYS)
    if role != "master":
        raise InvalidInput("autoscaling", "only a master's user-data may carry it (the scaler runs on the masters)")
    defaults = AutoscalingSettings()
    enabled = read_bool(obj.get("enabled", False), "autoscaling.enabled")
    above = _fraction(obj, "scale_out_above", defaults.scale_out_above, low_open=True)
    below = _fraction(obj, "scale_in_below", defaults.scale_in_below, high_open=True)
    if below >= above:
        raise InvalidInput("autoscaling.scale_in_below",
                           f"{below:g} must be below scale_out_above {above:g} (an inverted or empty band)")
    for key in ("min", "max"):
        if enabled and key not in obj:
            raise InvalidInput(f"autoscaling.{key}", "required when the scaler is enabled")
    low = _whole(obj, "min", 0, 0)
    high = _whole(obj, "max", 0, 0)
    if enabled and high < 1:
        raise InvalidInput("autoscaling.max", "must be at least 1 when the scaler is enabled")
    if low > high and (enabled or "max" in obj):
        raise InvalidInput("autoscaling.min", f"{low} is larger than autoscaling.max {high}")
    interval = _whole(obj, "interval", defaults.interval, 1, 3600)
    window = _whole(obj, "window", defaults.window, interval)
    endpoint = None
    if "endpoint" in obj:
        endpoint = read_url(obj["endpoint"], "autoscaling.endpoint")
        if not AS_PATH.match(urlsplit(endpoint).path):
            raise InvalidInput("autoscaling.endpoint", f"{endpoint!r} must end in /autoscaling-api/v1/<project_id>")
        endpoint = endpoint.rstrip("/")
    group = None
    if "group" in obj:
        group = read_string(obj["group"], "autoscaling.group")
        if not GROUP_NAME.match(group):
            raise InvalidInput("autoscaling.group", "an AS group name: 1-64 characters of A-Z, a-z, 0-9, '_-'")
    alluxio = None
    if "alluxio_above" in obj:
        alluxio = _fraction(obj, "alluxio_above", 0.0, low_open=True)
    return AutoscalingSettings(
        enabled=enabled,
        scale_out_above=above,
        scale_in_below=below,
        min=low,
        max=high,
        max_step=_whole(obj, "max_step", defaults.max_step, 1, 1000),
        cooldown_out=_whole(obj, "cooldown_out", defaults.cooldown_out, 1),
        cooldown_in=_whole(obj, "cooldown_in", defaults.cooldown_in, 1),
        idle_before_removal=_whole(obj, "idle_before_removal", defaults.idle_before_removal, 1),
        interval=interval,
        window=window,
        join_timeout=_whole(obj, "join_timeout", defaults.join_timeout, interval),
        alluxio_above=alluxio,
        endpoint=endpoint,
        group=group,
    )


def _whole(obj: dict[str, Any], key: str, default: int, low: int, high: int = MAX_SECONDS) -> int:
    if key not in obj:
        return default
    value = obj[key]
    if type(value) is not int:
        raise InvalidInput(f"autoscaling.{key}", f"expected a whole number, got {kind(value)}")
    if not low <= value <= high:
        raise InvalidInput(f"autoscaling.{key}", f"must be from {low} to {high}, got {value}")
    return value


def _fraction(obj: dict[str, Any], key: str, default: float, *, low_open: bool = False,
              high_open: bool = False) -> float:
    """A fraction of the total: 0.8, not 80 (a percentage is refused with the fraction it probably meant)."""
    if key not in obj:
        return default
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"autoscaling.{key}", f"expected a fraction such as 0.8, got {kind(value)}")
    number = float(value)
    if 1 < number <= 100:
        raise InvalidInput(f"autoscaling.{key}", f"{value} is not a fraction; did you mean {number / 100:g}?")
    if (number <= 0 if low_open else number < 0) or (number >= 1 if high_open else number > 1):
        bounds = f"{'above' if low_open else 'from'} 0 {'and below' if high_open else 'to'} 1"
        raise InvalidInput(f"autoscaling.{key}", f"must be {bounds}, got {value}")
    return number
