"""Build progress: a rich progress bar on a terminal, nothing otherwise."""

import sys
from types import TracebackType
from typing import Protocol


class ProgressReporter(Protocol):
    """Told how many tasks a build has to run, and when each is done."""

    def grow(self, tasks: int) -> None:
        """``tasks`` more tasks are to run."""
        ...

    def advance(self, description: str) -> None:
        """One task finished (built, failed or blocked)."""
        ...


class Silent:
    """Reports nothing."""

    def grow(self, tasks: int) -> None:
        """Ignore."""

    def advance(self, description: str) -> None:
        """Ignore."""


class ProgressBar:
    """A rich progress bar on standard error; use as a context manager."""

    def __init__(self) -> None:
        # rich is imported only when a bar is shown: it would double stardag's import time.
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]stardag[/] {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._bar = self._progress.add_task("building", total=0)

    def __enter__(self) -> "ProgressBar":
        self._progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def grow(self, tasks: int) -> None:
        """Add ``tasks`` to the total."""
        total = self._progress.tasks[0].total or 0
        self._progress.update(self._bar, total=total + tasks)

    def advance(self, description: str) -> None:
        """Count one more task done and show its name."""
        self._progress.update(self._bar, advance=1, description=description)


def wants_progress_bar(requested: bool | None) -> bool:
    """Show a bar when asked to, or by default when standard error is a terminal."""
    return sys.stderr.isatty() if requested is None else requested
