"""Is this node's clock synchronized? The kernel's answer, read the way systemd reads it.

OBS (like S3) refuses a request whose signature time is 15 minutes off (``RequestTimeTooSkewed``), so a node
whose clock runs free loses Alluxio's under-store and Spark's S3 paths long before anything else looks wrong.
The image installs a time sync daemon (``systemd-timesyncd``, or keeps chrony/ntp); the agent reports what the
kernel says (``clock`` in ``bootstrap-agent status``, the ``clock_not_synchronized`` log event), and does not
make the node unready for it: whether a clock is good enough is the daemon's business, not a reason to stop
services that may still work.

The rule is systemd's ``ntp_synced()`` (``src/basic/time-util.c``, what ``timedatectl``'s ``NTPSynchronized``
shows): ``adjtimex(2)`` with no modes set, synchronized when the kernel's maximum error is below 16 s. Every
time daemon (timesyncd, chrony, ntpd) lowers it while it disciplines the clock; the kernel raises it again by
itself when nobody does. In a container the kernel's clock is the host's, so is the answer.
"""

from __future__ import annotations

import ctypes
import ctypes.util

#: The kernel's "unsynchronized" maximum error (NTP_PHASE_LIMIT << 5, in microseconds): 16 s.
MAX_ERROR_US = 16_000_000
SYNCHRONIZED = "synchronized"
NOT_SYNCHRONIZED = "not synchronized"
UNKNOWN = "unknown"


class _Timex(ctypes.Structure):
    """The head of ``struct timex`` (<sys/timex.h>), then room for the rest of it (208 bytes on 64-bit)."""

    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("_rest", ctypes.c_byte * 256),
    ]


def kernel_max_error_us() -> int | None:
    """The kernel's maximum clock error in microseconds (``adjtimex``, read only), or None where it cannot say."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        timex = _Timex()  # modes 0: read, change nothing
        if libc.adjtimex(ctypes.byref(timex)) < 0:
            return None
    except (OSError, AttributeError):
        return None
    return int(timex.maxerror)


def clock_state(max_error_us: int | None = None) -> str:
    """``synchronized``, ``not synchronized`` or ``unknown``; ``max_error_us`` defaults to the kernel's."""
    error = kernel_max_error_us() if max_error_us is None else max_error_us
    if error is None:
        return UNKNOWN
    return SYNCHRONIZED if error < MAX_ERROR_US else NOT_SYNCHRONIZED
