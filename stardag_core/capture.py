"""What a task's ``run`` logs and prints, captured line by line for the registry.

While a build reports to a registry, a handler on the root logger and stand-ins for
``sys.stdout`` and ``sys.stderr`` pass everything on as before and also copy it, line by
line, into the log of the task whose ``run`` wrote it. Which task that is comes from a
context variable: set for each run, and carried into the threads an executor runs it on.
Code outside any run (the scheduler, the user's own threads) is left alone. Logging keeps
its levels: a ``logger.info`` inside ``run`` is captured when logging lets it through.
"""

import logging
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import TextIO

from stardag_core.registry import LogLine, now

FLUSH_LINES = 200
"""Lines a task's log holds before it hands them on, mid-run."""


class TaskLog:
    """The numbered lines of one task's run; full batches and the rest go to ``sink``."""

    def __init__(self, sink: Callable[[list[LogLine]], None]) -> None:
        self._sink = sink
        self._lines: list[LogLine] = []
        self._partial: dict[str, str] = {}
        self._seq = 0
        self._lock = threading.Lock()

    def write(self, stream: str, text: str) -> None:
        """Add ``text`` written to ``stream``; a line is complete at its newline."""
        with self._lock:
            pending = self._partial.pop(stream, "") + text
            *complete, rest = pending.split("\n")
            if rest:
                self._partial[stream] = rest
            for line in complete:
                self._add(stream, line)
            full = len(self._lines) >= FLUSH_LINES
        if full:
            self.flush()

    def extend(self, lines: Sequence[LogLine]) -> None:
        """Add lines a run wrote elsewhere (in a worker process), numbered after the lines
        so far and keeping their times."""
        with self._lock:
            for line in lines:
                self._add(line.stream, line.text, line.at)
            full = len(self._lines) >= FLUSH_LINES
        if full:
            self.flush()

    def flush(self) -> None:
        """Hand the lines so far (an unfinished line included) to the sink."""
        with self._lock:
            for stream, rest in self._partial.items():
                self._add(stream, rest)
            self._partial.clear()
            lines, self._lines = self._lines, []
        if lines:
            self._sink(lines)

    def _add(self, stream: str, text: str, at: datetime | None = None) -> None:
        self._lines.append(LogLine(self._seq, stream, text, at or now()))
        self._seq += 1


_current: ContextVar[TaskLog | None] = ContextVar("stardag_task_log", default=None)


@contextmanager
def logging_to(log: TaskLog) -> Iterator[None]:
    """Capture into ``log`` what runs inside the block writes (this thread or asyncio task,
    and threads started with a copy of its context)."""
    token = _current.set(log)
    try:
        yield
    finally:
        _current.reset(token)


class _Handler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        log = _current.get()
        if log is not None:
            try:
                log.write("log", self.format(record) + "\n")
            except Exception:
                self.handleError(record)
        # Logging hands a record no handler takes to its last resort (stderr, warnings and
        # above); this handler must not swallow what would have appeared there. It writes to
        # the real stderr: through the stand-in, the line would be captured twice.
        last_resort = logging.lastResort
        if last_resort is not None and record.levelno >= last_resort.level and _alone(record):
            stderr = sys.stderr.original if isinstance(sys.stderr, _Tee) else sys.stderr
            try:
                stderr.write(last_resort.format(record) + "\n")
            except Exception:
                self.handleError(record)


def _alone(record: logging.LogRecord) -> bool:
    """Whether the capturing handler is the only one the record reaches."""
    logger: logging.Logger | None = logging.getLogger(record.name)
    while logger is not None:
        if any(handler is not _handler for handler in logger.handlers):
            return False
        logger = logger.parent if logger.propagate else None
    return True


class _Tee:
    """A text stream that writes through to ``original`` and copies into the run's log."""

    def __init__(self, name: str, original: TextIO) -> None:
        self._name = name
        self.original = original

    def write(self, text: str) -> int:
        log = _current.get()
        if log is not None:
            log.write(self._name, text)
        return self.original.write(text)

    def __getattr__(self, name: str) -> object:
        return getattr(self.original, name)


_installed = 0
_install_lock = threading.Lock()
_handler = _Handler()
_handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))


@contextmanager
def capturing() -> Iterator[None]:
    """Install the log handler and the stream stand-ins for the block (once, however many
    builds run at the same time)."""
    global _installed
    with _install_lock:
        if _installed == 0:
            logging.getLogger().addHandler(_handler)
            sys.stdout = _Tee("stdout", sys.stdout)
            sys.stderr = _Tee("stderr", sys.stderr)
        _installed += 1
    try:
        yield
    finally:
        with _install_lock:
            _installed -= 1
            if _installed == 0:
                logging.getLogger().removeHandler(_handler)
                for name in ("stdout", "stderr"):
                    stream = getattr(sys, name)
                    if isinstance(stream, _Tee):
                        setattr(sys, name, stream.original)


@contextmanager
def capturing_into(log: TaskLog, level: int) -> Iterator[None]:
    """Capture into ``log`` what the block prints, and what it logs at ``level`` or above:
    for a run in a worker process, which has none of the build's logging set-up."""
    root = logging.getLogger()
    previous = root.level
    root.setLevel(level)
    try:
        with capturing(), logging_to(log):
            yield
    finally:
        root.setLevel(previous)
        log.flush()
