"""Progress of long CLI commands: a bar on a terminal, silence anywhere else (logs, CI, pipes).

Core functions take a plain ``progress(done, total)`` callback and know nothing of terminals; the CLI hands
them one from ``progress_bar``. rich (already installed with typer) draws the bar on stderr, so stdout stays
what the command prints for scripts.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Update = Callable[[int, int], None]


@contextmanager
def progress_bar(description: str, enabled: bool | None = None) -> Iterator[Update]:
    """Yields ``update(done, total)``; draws a bar only when stderr is a terminal (or ``enabled`` says so)."""
    if not (sys.stderr.isatty() if enabled is None else enabled):
        yield lambda done, total: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
    ) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


@contextmanager
def progress_phases(description: str, logger: str = "ops.bench", enabled: bool | None = None) -> Iterator[None]:
    """A spinner with the elapsed time and the latest phase the command's modules log at INFO under
    ``logger`` (e.g. "processes up and warm"), on a terminal only; the log records still go where they went."""
    if not (sys.stderr.isatty() if enabled is None else enabled):
        yield
        return
    import logging

    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=Console(stderr=True)
    ) as bar:
        task = bar.add_task(description, total=None)

        class Phase(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                bar.update(task, description=f"{description}: {record.getMessage()[:80]}")

        handler, source = Phase(logging.INFO), logging.getLogger(logger)
        level = source.level
        source.addHandler(handler)
        source.setLevel(min(level or logging.INFO, logging.INFO))
        try:
            yield
        finally:
            source.removeHandler(handler)
            source.setLevel(level)
