"""The ``stardag`` command line."""

import importlib
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from stardag_core.build import DEFAULT_LOCK_TTL, build
from stardag_core.cli_config import (
    auth_app,
    console,
    errors,
    friendly,
    profile_app,
    registry_app,
)
from stardag_core.cli_workspace import (
    lineage,
    organizations_app,
    target_roots_app,
    tasks_app,
    workspaces_app,
)
from stardag_core.config import Settings, get_settings, use_settings
from stardag_core.demo import demo_dag
from stardag_core.executors import (
    DaskExecutor,
    Executor,
    InlineExecutor,
    ProcessExecutor,
    ThreadExecutor,
)
from stardag_core.profiles import stardag_home
from stardag_core.scheduler import FailMode
from stardag_core.summary import BuildSummary
from stardag_core.targets import FileTarget, Target
from stardag_core.tasks import Task, flatten_targets, flatten_tasks

app = typer.Typer(
    help="stardag: declarative DAGs of persistently stored assets.", no_args_is_help=True
)
db_app = typer.Typer(help="The registry's database.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(registry_app, name="registry")
app.add_typer(auth_app, name="auth")
app.add_typer(profile_app, name="profile")
app.add_typer(organizations_app, name="organizations")
app.add_typer(workspaces_app, name="workspaces")
app.add_typer(target_roots_app, name="target-roots")
app.add_typer(tasks_app, name="tasks")
app.command("lineage")(lineage)


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


@db_app.command("upgrade")
def db_upgrade(
    database_url: Annotated[
        str | None,
        typer.Option(
            help="Database URL (default: STARDAG_DATABASE_URL, else the embedded SQLite file)."
        ),
    ] = None,
    revision: Annotated[str, typer.Option(help="Schema revision to upgrade to.")] = "head",
) -> None:
    """Upgrade the registry database's schema (needs the ``server`` extra)."""
    try:
        # The server is an optional extra: imported only by the commands that need it.
        from stardag_graphql.migrations import upgrade
        from stardag_graphql.settings import Settings as ServerSettings
        from stardag_graphql.settings import masked_url
    except ImportError as error:
        raise typer.BadParameter(
            f"the registry needs the server extra ({error}): pip install 'stardag[server]'"
        ) from error
    url = database_url or ServerSettings().database_url
    upgrade(url, revision)
    console.print(f"{masked_url(url)} is at schema revision {revision}", highlight=False)


@app.command()
def serve(
    host: Annotated[
        str, typer.Option(help="Address to listen on (loopback only in local mode).")
    ] = ("127.0.0.1"),
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
) -> None:
    """Run the registry (GraphQL API and GraphiQL) on an embedded SQLite or STARDAG_DATABASE_URL."""
    try:
        # The server is an optional extra: imported only by the commands that need it.
        from stardag_graphql.errors import ServerConfigError
        from stardag_graphql.server import check_host
        from stardag_graphql.server import serve as serve_registry
        from stardag_graphql.settings import Settings as ServerSettings
        from stardag_graphql.settings import masked_url
    except ImportError as error:
        raise typer.BadParameter(
            f"the registry needs the server extra ({error}): pip install 'stardag[server]'"
        ) from error
    try:
        settings = ServerSettings()
    except ValueError as error:
        console.print(f"[red]error:[/] the registry settings are not valid: {error}")
        raise typer.Exit(2) from error
    try:
        check_host(host, server_mode=settings.server_mode)
    except ServerConfigError as error:
        raise typer.BadParameter(str(error), param_hint="--host") from error
    mode = (
        f"server mode, sign-in at {settings.oidc_issuer}" if settings.server_mode else "local mode"
    )
    console.print(
        f"registry on http://{host}:{port}/graphql (GraphiQL in a browser), {mode}, "
        f"database {masked_url(settings.database_url)}",
        highlight=False,
    )
    try:
        serve_registry(settings, host, port)
    except ServerConfigError as error:
        console.print(f"[red]error:[/] {error}", highlight=False)
        raise typer.Exit(1) from error


@app.command()
@friendly
def up(
    demo: Annotated[
        bool, typer.Option("--demo", help="Also build the example pipeline into the registry.")
    ] = False,
    host: Annotated[str, typer.Option(help="Address to listen on (loopback only).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
) -> None:
    """Run the registry (embedded SQLite, no login) and the GUI in one process on loopback."""
    try:
        # The GUI and the server are optional extras: imported only by the commands that need them.
        from stardag_graphql.errors import ServerConfigError
        from stardag_graphql.settings import Settings as ServerSettings
        from stardag_gui.launch import check_port
        from stardag_gui.up import up as serve_up
    except ImportError as error:
        raise typer.BadParameter(
            f"stardag up needs the server and gui extras ({error}): "
            "pip install 'stardag[server,gui]'"
        ) from error
    settings = ServerSettings()
    if settings.server_mode:
        raise typer.BadParameter(
            "stardag up runs the registry in local mode, without login, but server mode is "
            "configured (STARDAG_OIDC_ISSUER): run `stardag serve` and `stardag gui` instead"
        )
    check_port(host, port)
    url = f"http://{host}:{port}"
    console.print(
        f"stardag on {url}/ (the GUI)\n"
        f"registry on {url}/graphql (GraphiQL in a browser); pipelines report to it with "
        f"STARDAG_REGISTRY_URL={url}\n"
        f"database {settings.database_url.split('///')[-1]}; press Ctrl+C to stop",
        highlight=False,
    )
    try:
        serve_up(settings, stardag_home(), host=host, port=port, demo=demo)
    except ServerConfigError as error:
        raise typer.BadParameter(str(error), param_hint="--host") from error


@app.command()
@friendly
def gui(
    native: Annotated[
        bool, typer.Option("--native", help="Open a native window (the `native` extra).")
    ] = False,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8080,
    sign_in: Annotated[
        bool,
        typer.Option(
            "--sign-in",
            envvar="STARDAG_GUI_SIGN_IN",
            help="Serve a team: each person signs in at the registry's identity provider "
            "(allows any --host).",
        ),
    ] = False,
    registry_url: Annotated[
        str | None,
        typer.Option(envvar="STARDAG_GUI_REGISTRY_URL", help="The registry, with --sign-in."),
    ] = None,
    public_url: Annotated[
        str | None,
        typer.Option(
            envvar="STARDAG_GUI_PUBLIC_URL",
            help="Where browsers reach the GUI, with --sign-in (the provider redirects back to "
            "<URL>/auth/callback); default: the address each request came to.",
        ),
    ] = None,
) -> None:
    """Open the GUI on the configured registry, in a browser or a native window; with
    --sign-in, serve it to a team, each person signed in."""
    try:
        # The GUI is an optional extra: imported only by the command that needs it.
        from stardag_gui.launch import gui as serve_gui
    except ImportError as error:
        raise typer.BadParameter(
            f"the GUI needs the gui extra ({error}): pip install 'stardag[gui]'"
        ) from error
    serve_gui(
        stardag_home(),
        host=host,
        port=port,
        native=native,
        sign_in=sign_in,
        registry_url=registry_url,
        public_url=public_url,
    )


class ExecutorChoice(StrEnum):
    """Where ``stardag build`` runs task code."""

    INLINE = "inline"
    THREADS = "threads"
    PROCESSES = "processes"
    DASK = "dask"


@app.command("build")
@friendly
def build_command(
    target: Annotated[
        str,
        typer.Argument(
            help="module:expression giving a task or a list of tasks, e.g. "
            "'pipeline:train(epochs=3)'",
        ),
    ],
    executor: Annotated[ExecutorChoice, typer.Option(help="Where task code runs.")] = (
        ExecutorChoice.THREADS
    ),
    workers: Annotated[
        int | None, typer.Option(min=1, help="Threads, processes or Dask workers.")
    ] = None,
    dask_address: Annotated[
        str | None, typer.Option(help="Dask scheduler address (default: a local cluster).")
    ] = None,
    keep_going: Annotated[
        bool, typer.Option("--keep-going", "-k", help="Build independent branches after a failure.")
    ] = False,
    progress: Annotated[
        bool | None, typer.Option("--progress/--no-progress", help="Show a progress bar.")
    ] = None,
    locks: Annotated[
        bool,
        typer.Option(
            "--locks",
            help="Take each task's build lock from the configured registry before running it, "
            "so that workers building the same tasks at once build each only once.",
        ),
    ] = False,
    lock_ttl: Annotated[
        float,
        typer.Option(
            min=1,
            max=86_400,
            help="Seconds a lock's lease lasts unless renewed (with --locks; renewed every "
            "third of it while the task runs).",
        ),
    ] = DEFAULT_LOCK_TTL,
) -> None:
    """Build the task(s) TARGET evaluates to, and everything they need that is missing."""
    tasks = _tasks_from(target)
    fail_mode: FailMode = "continue" if keep_going else "fail_fast"
    try:
        summary = build(
            *tasks,
            executor=_executor(executor, workers, dask_address),
            fail_mode=fail_mode,
            progress=progress,
            locks=locks,
            lock_ttl=lock_ttl,
        )
    except KeyboardInterrupt:
        errors.print(
            "cancelled: no task started after the interrupt, and the outputs committed "
            "before it stay (the next build skips them)"
        )
        raise typer.Exit(130) from None
    _print_summary(summary)
    if not summary.ok:
        raise typer.Exit(1)


def _tasks_from(target: str) -> list[Task]:
    module_name, sep, expression = target.partition(":")
    if not sep or not module_name or not expression:
        raise typer.BadParameter(
            f"{target!r} is not module:expression (e.g. 'pipeline:train(epochs=3)')"
        )
    sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise typer.BadParameter(f"cannot import {module_name!r}: {error}") from error
    try:
        value: Any = eval(expression, vars(module))
    except Exception as error:
        raise typer.BadParameter(
            f"evaluating {expression!r} in {module_name} failed: {error!r}"
        ) from error
    tasks = list(value) if isinstance(value, list | tuple) else [value]
    wrong = [item for item in tasks if not isinstance(item, Task)]
    if wrong or not tasks:
        raise typer.BadParameter(
            f"{expression!r} gave {wrong[0] if wrong else value!r}, not a task or a list of tasks"
        )
    return tasks


def _executor(choice: ExecutorChoice, workers: int | None, dask_address: str | None) -> Executor:
    if choice is ExecutorChoice.INLINE:
        return InlineExecutor()
    if choice is ExecutorChoice.THREADS:
        return ThreadExecutor(workers)
    if choice is ExecutorChoice.PROCESSES:
        return ProcessExecutor(workers)
    return DaskExecutor(dask_address, n_workers=workers or 2)


def _print_summary(summary: BuildSummary) -> None:
    counts = ", ".join(
        f"{count} {kind.replace('_', ' ')}" for kind, count in summary.counts.items()
    )
    console.print(counts)
    for failure in summary.failures:
        console.print(f"[red]failed[/] {failure.task!r} ({failure.task.id})", highlight=False)
        console.print(failure.traceback, markup=False, highlight=False)


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
