"""What a benchmark result was measured on: Python, machine, load and library versions."""

from __future__ import annotations

import os
import platform
from typing import Any


def environment(load_before: tuple[float, float, float], **versions: str) -> dict[str, Any]:
    """Return the environment block of a result JSON.

    :param load_before: ``os.getloadavg()`` taken before the measurements.
    :param versions: library name -> version of the libraries measured.
    """
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        **versions,
    }
