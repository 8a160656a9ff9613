"""Number formatting for verdict texts (people read these in Slack and terminals)."""

from __future__ import annotations

import math


def num(x: float) -> str:
    """Counts with thousands separators, other values with 3 significant digits."""
    if x is None or math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    if float(x).is_integer() and abs(x) >= 1:
        return f"{int(x):,}"
    return f"{x:.3g}"


def pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.3g}%"


def ratio_range(low: float, high: float) -> str:
    lo = "0" if low <= 0 else f"x{low:.3g}"
    hi = "unbounded" if math.isinf(high) else f"x{high:.3g}"
    return f"{lo} to {hi}"


def seconds(s: float) -> str:
    if math.isinf(s) or math.isnan(s):
        return "unknown time"
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def secs(t: float) -> str:
    return f"t={t:g} s"
