"""Shared by the benchmark scripts: peak memory of the current process."""

from __future__ import annotations

import resource
from pathlib import Path


def peak_rss_mib() -> dict[str, float]:
    """``ru_maxrss`` of this process in MiB, plus ``VmHWM``/``VmRSS`` on Linux."""
    out = {"ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(("VmHWM:", "VmRSS:")):
                key = line.split(":")[0]
                out[f"{key}_mib"] = int(line.split()[1]) / 1024
    except OSError:  # not Linux
        pass
    return out
