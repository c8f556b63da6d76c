"""The ``stardag`` command line."""

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from stardag_core.build import build
from stardag_core.config import Settings, get_settings, use_settings
from stardag_core.demo import demo_dag
from stardag_core.targets import FileTarget, Target
from stardag_core.tasks import Task, flatten_targets, flatten_tasks

app = typer.Typer(
    help="stardag: declarative DAGs of persistently stored assets.", no_args_is_help=True
)
console = Console()


@app.callback()
def main() -> None:
    """stardag: declarative DAGs of persistently stored assets."""


@app.command()
def demo(
    root: Annotated[
        Path | None,
        typer.Option(help="Directory to write outputs under (default: the 'default' target root)."),
    ] = None,
) -> None:
    """Build an example DAG on the local filesystem and show what was built, and where."""
    settings = get_settings() if root is None else Settings(target_roots={"default": str(root)})
    with use_settings(settings):
        dag = demo_dag()
        summary = build(dag)
        summary.raise_on_failure()
        built = {task.id for task in summary.built}
        table = Table(title="stardag demo", title_justify="left")
        table.add_column("task", no_wrap=True)
        table.add_column("status", no_wrap=True)
        table.add_column("output", overflow="fold")
        tasks = _walk(dag)
        for task in tasks:
            status = "[green]built[/]" if task.id in built else "[dim]already complete[/]"
            where = ", ".join(_describe(target) for target in flatten_targets(task.output()))
            table.add_row(f"{task.get_name()} {str(task.id)[:8]}", status, where)
        console.print(table)
        console.print(f"\n{len(built)} built, {len(tasks) - len(built)} already complete.")
        console.print(f"Report ({dag.output().uri}):\n")
        console.print(dag.load(), markup=False)


def _walk(root: Task) -> list[Task]:
    """The tasks under ``root``, dependencies first, each once."""
    seen: dict[object, Task] = {}

    def visit(task: Task) -> None:
        if task.id not in seen:
            for dependency in flatten_tasks(task.requires()):
                visit(dependency)
            seen[task.id] = task

    visit(root)
    return list(seen.values())


def _describe(target: Target) -> str:
    return target.uri if isinstance(target, FileTarget) else repr(target)
