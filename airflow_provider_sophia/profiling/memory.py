"""Resident set size of this process: now, and its peak since a reset (Linux), or ``None``."""

from __future__ import annotations

from pathlib import Path

import psutil

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
_PROCESS = psutil.Process()


def current_rss() -> int:
    """Return this process's resident set size in bytes."""
    return int(_PROCESS.memory_info().rss)


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (``VmHWM``) to the current RSS; return whether it worked.

    Linux only (``/proc/self/clear_refs``, value 5); elsewhere the peak comes from sampling.
    """
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def peak_rss() -> int | None:
    """Return the kernel's peak RSS mark (``VmHWM``) in bytes, or ``None`` where unavailable."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None
