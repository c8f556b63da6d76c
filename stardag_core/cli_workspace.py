"""``stardag organizations``, ``workspaces``, ``target-roots``, ``tasks`` and ``lineage``:
what the configured registry knows, as tables."""

import json
import textwrap
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.tree import Tree

from stardag_core.cli_config import console, friendly, open_client, table
from stardag_core.config import DEFAULT_TARGET_ROOT, get_settings
from stardag_core.exceptions import ConfigError, RegistryError
from stardag_core.profiles import resolve_registry, stardag_home
from stardag_core.workspace_cache import SYNC_HINT, RootChanges, default_cache

if TYPE_CHECKING:
    from stardag_core.client import RegistryClient

organizations_app = typer.Typer(help="Your organizations.", no_args_is_help=True)
workspaces_app = typer.Typer(help="Workspaces you reach.", no_args_is_help=True)
target_roots_app = typer.Typer(
    help="The workspace's target roots, and their cached copy.", no_args_is_help=True
)
tasks_app = typer.Typer(help="The workspace's tasks.", no_args_is_help=True)

STATUS_STYLE = {
    "COMPLETED": "green",
    "FAILED": "red",
    "RUNNING": "yellow",
    "PENDING": "dim",
    "CANCELLED": "magenta",
}
TASK_FIELDS = "taskId namespace name version status updatedAt"
SHOWN_EVENTS = 10
"""How many of a task's events `tasks show` lists: the latest."""
LINEAGE_FIELDS = "nodes { taskId namespace name status } edges { upstream downstream }"


@organizations_app.command("list")
@friendly
def organizations_list() -> None:
    """List your organizations; * marks the configured one."""
    with open_client() as client:
        data = client.execute(
            "{ viewer { memberships { role organization { slug name } } } "
            "organizations { slug name viewerRole } }"
        )
        active = client.config.organization
    rows = (
        [(m["organization"], m["role"]) for m in data["viewer"]["memberships"]]
        if data["viewer"] is not None
        else [(organization, organization["viewerRole"]) for organization in data["organizations"]]
    )
    output = table("", "slug", "name", "your role")
    for organization, role in sorted(rows, key=lambda row: row[0]["slug"]):
        mark = "*" if organization["slug"] == active else ""
        output.add_row(mark, organization["slug"], organization["name"], role.lower())
    console.print(output)


@workspaces_app.command("list")
@friendly
def workspaces_list() -> None:
    """List the workspaces you reach; * marks the configured one."""
    with open_client() as client:
        workspaces = client.workspaces()
        config = client.config
        current = client.workspace_id() if config.workspace else None
    output = table("", "organization", "slug", "name", "id", whole=("id",))
    for workspace in workspaces:
        mark = "*" if workspace.id == current else ""
        output.add_row(mark, workspace.organization, workspace.slug, workspace.name, workspace.id)
    console.print(output)


@target_roots_app.command("list")
@friendly
def target_roots_list() -> None:
    """List the workspace's target roots beside the cached copy builds use."""
    config = resolve_registry()
    cache = default_cache(stardag_home())
    with open_client(config) as client:
        entry = cache.get(client.config)
        cached = dict(entry.target_roots) if entry and entry.synced_at else {}
        try:
            live = client.target_roots()
        except RegistryError as error:
            console.print(f"[yellow]offline:[/] {error}", highlight=False)
            live = None
    if not (live or cached):
        _no_roots()
        return
    output = table("name", "uri", "status")
    if live is None:
        for name, uri in sorted(cached.items()):
            output.add_row(name, uri, "cached")
        console.print(output)
        return
    changes = RootChanges.between(cached, live)
    for name, uri in sorted(live.items()):
        if name in changes.added:
            status = "new: synced at the next build"
        elif name in changes.changed:
            status = f"[red]changed[/] (cached: {changes.changed[name][0]})"
        else:
            status = "synced"
        output.add_row(name, uri, status)
    for name, uri in sorted(changes.removed.items()):
        output.add_row(name, uri, "[red]removed from the workspace[/]")
    console.print(output)
    if changes.changed or changes.removed:
        console.print(f"Builds stop until then: {SYNC_HINT}.")


@target_roots_app.command("sync")
@friendly
def target_roots_sync() -> None:
    """Take the workspace's target roots as they are now (into the cache builds use)."""
    with open_client() as client:
        changes = client.sync_target_roots()
        roots = client.target_roots()
    for name, uri in changes.added.items():
        console.print(f"added {name} → {uri}", highlight=False)
    for name, (old, new) in changes.changed.items():
        console.print(f"changed {name}: {old} → {new}", highlight=False)
    for name, uri in changes.removed.items():
        console.print(f"removed {name} ({uri})", highlight=False)
    if not changes:
        console.print("The target roots were already in sync.")
    if not roots:
        _no_roots()
        return
    output = table("name", "uri")
    for name, uri in sorted(roots.items()):
        output.add_row(name, uri)
    console.print(output)


def _no_roots() -> None:
    console.print(
        "The workspace has no target roots: builds write under "
        f"{get_settings().target_root(DEFAULT_TARGET_ROOT)}. Add one with the registry's "
        "setTargetRoot mutation (or the GUI's settings).",
        highlight=False,
    )


@tasks_app.command("list")
@friendly
def tasks_list(
    search: Annotated[
        str | None, typer.Option(help="Part of the name, or the start of the task id.")
    ] = None,
    status: Annotated[
        list[str] | None, typer.Option(help="Only tasks with this status (repeatable).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=100, help="How many to show.")] = 20,
) -> None:
    """List the workspace's tasks, most recently updated first."""
    task_filter: dict[str, Any] = {}
    if search:
        task_filter["search"] = search
    if status:
        task_filter["statuses"] = [value.upper() for value in status]
    with open_client() as client:
        data = client.execute(
            "query($w: ID!, $f: TaskFilter, $n: Int!) { workspace(id: $w) { tasks(filter: $f, "
            "orderBy: {field: UPDATED_AT, direction: DESC}, first: $n) { totalCount "
            f"nodes {{ {TASK_FIELDS} }} }} }} }}",
            w=client.workspace_id(),
            f=task_filter or None,
            n=limit,
        )
    tasks = _workspace(data)["tasks"]
    output = table("task id", "task", "version", "status", "updated", whole=("task id",))
    for task in tasks["nodes"]:
        output.add_row(
            task["taskId"], _family(task), task["version"], _status(task), task["updatedAt"][:19]
        )
    console.print(output)
    console.print(f"{len(tasks['nodes'])} of {tasks['totalCount']} tasks.")


@tasks_app.command("show")
@friendly
def tasks_show(
    task_id: Annotated[str, typer.Argument(help="A task id, or its unique start.")],
) -> None:
    """Show a task: parameters, output, dependencies, dependents, its latest events and, when
    it failed, the error."""
    with open_client() as client:
        workspace = client.workspace_id()
        full_id = _task_id(client, workspace, task_id)
        data = client.execute(
            "query($w: ID!, $t: String!) { workspace(id: $w) { task(taskId: $t) { "
            f"{TASK_FIELDS} parameters outputUri createdAt "
            f"dependencies {{ {TASK_FIELDS} }} dependents {{ {TASK_FIELDS} }} }} }} }}",
            w=workspace,
            t=full_id,
        )
        task = _workspace(data)["task"]
        events = _events(client, workspace, full_id)
    console.print(f"[bold]{_family(task)}[/] {task['taskId']}", highlight=False)
    console.print(f"status      {_status(task)}  (updated {task['updatedAt'][:19]})")
    console.print(f"version     {task['version'] or '-'}", highlight=False)
    console.print(f"output      {task['outputUri'] or '-'}", highlight=False)
    console.print("parameters")
    console.print(json.dumps(task["parameters"], indent=2, sort_keys=True), highlight=False)
    for title, related in (("needs", task["dependencies"]), ("needed by", task["dependents"])):
        console.print(f"{title} ({len(related)})")
        for other in related:
            console.print(f"  {other['taskId']}  {_family(other)}  {_status(other)}")
    shown = events[-SHOWN_EVENTS:]
    some = f"the last {len(shown)} of " if len(shown) < len(events) else ""
    console.print(f"events ({some}{len(events)})")
    for event in shown:
        console.print(f"  {event['occurredAt'][:19]}  {event['kind'].lower()}")
    failures = [event for event in events if event["kind"] == "TASK_FAILED"]
    if task["status"] == "FAILED" and failures:
        error = str(failures[-1]["payload"].get("error") or "no error was recorded").rstrip()
        console.print(f"error ({failures[-1]['occurredAt'][:19]})")
        console.print(textwrap.indent(error, "  "), markup=False, highlight=False)


def _events(client: "RegistryClient", workspace: str, task_id: str) -> list[dict[str, Any]]:
    """Every event of a task, in the order they occurred (a page at a time)."""
    events: list[dict[str, Any]] = []
    after = None
    while True:
        data = client.execute(
            "query($w: ID!, $t: String!, $a: String) { workspace(id: $w) { task(taskId: $t) { "
            "events(first: 100, after: $a) { nodes { kind occurredAt payload } "
            "pageInfo { hasNextPage endCursor } } } } }",
            w=workspace,
            t=task_id,
            a=after,
        )
        page = _workspace(data)["task"]["events"]
        events += page["nodes"]
        if not page["pageInfo"]["hasNextPage"]:
            return events
        after = page["pageInfo"]["endCursor"]


@friendly
def lineage(
    task_id: Annotated[str, typer.Argument(help="A task id, or its unique start.")],
    downstream: Annotated[
        bool, typer.Option("--downstream", help="What needs the task, not what it needs.")
    ] = False,
    depth: Annotated[int | None, typer.Option(min=1, help="How many levels to show.")] = None,
) -> None:
    """Show what a task needs (or, with --downstream, what needs it), as a tree."""
    direction = "downstream" if downstream else "upstream"
    with open_client() as client:
        workspace = client.workspace_id()
        full_id = _task_id(client, workspace, task_id)
        data = client.execute(
            "query($w: ID!, $t: String!, $d: Int) { workspace(id: $w) { task(taskId: $t) { "
            f"{TASK_FIELDS} {direction}(maxDepth: $d) {{ __typename "
            f"... on Lineage {{ {LINEAGE_FIELDS} }} "
            f"... on TruncatedLineage {{ {LINEAGE_FIELDS} maxNodes }} }} }} }} }}",
            w=workspace,
            t=full_id,
            d=depth,
        )
    task = _workspace(data)["task"]
    found = task[direction]
    nodes = {node["taskId"]: node for node in found["nodes"]}
    nodes[task["taskId"]] = task
    children: dict[str, list[str]] = {}
    for edge in found["edges"]:
        parent, child = (
            (edge["upstream"], edge["downstream"])
            if downstream
            else (edge["downstream"], edge["upstream"])
        )
        children.setdefault(parent, []).append(child)
    tree = Tree(_label(task))
    _grow(tree, task["taskId"], nodes, children, {task["taskId"]})
    console.print(tree)
    if found["__typename"] == "TruncatedLineage":
        console.print(f"(the nearest {found['maxNodes']} tasks; ask for less with --depth)")


def _grow(
    tree: Tree,
    task_id: str,
    nodes: dict[str, dict[str, Any]],
    children: dict[str, list[str]],
    shown: set[str],
) -> None:
    for child in sorted(children.get(task_id, []), key=lambda c: _family(nodes.get(c, {}))):
        node = nodes.get(child)
        if node is None:
            continue
        if child in shown:
            tree.add(f"{_label(node)} [dim](shown above)[/]")
            continue
        shown.add(child)
        _grow(tree.add(_label(node)), child, nodes, children, shown)


def _task_id(client: "RegistryClient", workspace: str, given: str) -> str:
    """The full task id of ``given``: itself, or the one task whose id starts with it."""
    data = client.execute(
        "query($w: ID!, $s: String!) { workspace(id: $w) { tasks(filter: {search: $s}, "
        "first: 10) { nodes { taskId name } } } }",
        w=workspace,
        s=given,
    )
    matches = [str(task["taskId"]) for task in _workspace(data)["tasks"]["nodes"]]
    if given in matches:
        return given
    by_prefix = [task_id for task_id in matches if task_id.startswith(given)]
    if len(by_prefix) == 1:
        return by_prefix[0]
    if not by_prefix:
        raise ConfigError(
            f"no task {given!r} in workspace {client.config.workspace or workspace}: list them "
            "with `stardag tasks list`"
        )
    raise ConfigError(f"{given!r} starts several task ids ({', '.join(by_prefix)}): give more")


def _workspace(data: dict[str, Any]) -> dict[str, Any]:
    workspace = data["workspace"]
    if workspace is None:
        raise ConfigError("the configured workspace is gone, or you no longer reach it")
    return dict(workspace)


def _family(task: dict[str, Any]) -> str:
    namespace, name = str(task.get("namespace") or ""), str(task.get("name") or "")
    return f"{namespace}.{name}" if namespace else name


def _status(task: dict[str, Any]) -> str:
    status = str(task["status"])
    return f"[{STATUS_STYLE.get(status, 'white')}]{status.lower()}[/]"


def _label(task: dict[str, Any]) -> str:
    return f"{_family(task)} [dim]{task['taskId']}[/] {_status(task)}"
