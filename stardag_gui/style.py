"""How statuses, times and durations look on every page."""

from datetime import UTC, datetime

STATUS_COLORS = {
    "PENDING": "#9e9e9e",
    "RUNNING": "#1e88e5",
    "COMPLETED": "#43a047",
    "FAILED": "#e53935",
    "CANCELLED": "#fb8c00",
}
"""A colour per task and build status, the same in lists, badges and graphs."""


def parse_time(value: str | None) -> datetime | None:
    """A registry timestamp (ISO 8601) as a datetime; None stays None."""
    return datetime.fromisoformat(value) if value else None


def show_time(value: str | None) -> str:
    """A registry timestamp as local time to the second, '—' when there is none."""
    moment = parse_time(value)
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment else "—"


def show_duration(started: str | None, finished: str | None) -> str:
    """How long from ``started`` to ``finished`` (to now while unfinished): '1 h 2 min',
    '3 min 4 s', '5.6 s'."""
    start = parse_time(started)
    if start is None:
        return "—"
    seconds = ((parse_time(finished) or datetime.now(UTC)) - start).total_seconds()
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"
