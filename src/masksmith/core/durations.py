"""Durations as people write and read them: "12m", "90s", "1.5h" in; "4m 10s" out (progress lines, previews,
the report and the web app all show time the same way)."""

from __future__ import annotations

from masksmith.core.errors import MasksmithError


def parse_duration(text: str) -> float:
    """Seconds from '12m', '90s', '1.5h' or plain seconds; a MasksmithError for anything else."""
    units = {"s": 1, "m": 60, "h": 3600}
    t = str(text).strip().lower()
    try:
        seconds = float(t[:-1]) * units[t[-1]] if t and t[-1] in units else float(t)
    except ValueError:
        raise MasksmithError(f"time {text!r} is not a duration.", fix="write it like 12m, 90s or 1.5h.") from None
    return seconds  # its range is the training config's to check (TrainConfig.check)


def format_duration(seconds: float) -> str:
    """"45s", "4m 10s", "1h 05m"."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"
