"""Tasks read back from the registry: ``Task.from_registry(task_id)``.

The registry keeps each task's family and the parameters its id hashes, with the tasks it
takes as parameters stored as their ids. Reading a task back looks its class up by family
(the module that defines it must be imported), reads the tasks it takes the same way, and
checks that the rebuilt task has the id asked for, so that its output is the one stored.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

from stardag_core import families
from stardag_core.exceptions import RegistryError

if TYPE_CHECKING:
    from stardag_core.tasks import Task

TASK = """query($w: ID!, $t: String!) {
  workspace(id: $w) { task(taskId: $t) { name namespace parameters } }
}"""


Loader = Callable[[str], "Task | None"]


class TaskSource(Protocol):
    """Where stored tasks are read: a registry client (``stardag_core.client``)."""

    def execute(self, document: str, **variables: Any) -> dict[str, Any]:
        """The data of a GraphQL query."""
        ...

    def workspace_id(self) -> str:
        """The global id of the workspace read."""
        ...


def task_from_registry(task_id: str, source: TaskSource) -> "Task":
    """The task registered as ``task_id`` in the source's workspace, rebuilt from its stored
    parameters (and the tasks among them, recursively)."""
    loaded: dict[str, Task] = {}

    def load(wanted: str) -> "Task | None":
        if wanted not in loaded:
            data = source.execute(TASK, w=source.workspace_id(), t=wanted)
            record = data["workspace"]["task"] if data["workspace"] else None
            if record is None:
                return None
            loaded[wanted] = _rebuild(wanted, record, load)
        return loaded[wanted]

    task = load(task_id)
    if task is None:
        raise RegistryError(
            f"no task {task_id} in the workspace: list its tasks with `stardag tasks list`"
        )
    return task


def _rebuild(task_id: str, record: dict[str, Any], load: Loader) -> "Task":
    try:
        cls = families.lookup(record["namespace"], record["name"])
    except KeyError as error:
        raise RegistryError(f"task {task_id}: {error.args[0]}") from None
    stored = {key: value for key, value in record["parameters"].items() if not key.startswith("__")}
    task = cls.model_validate({name: _with_tasks(value, load) for name, value in stored.items()})
    if str(task.id) != task_id:
        raise RegistryError(
            f"task {task_id} read back as {task!r}, whose id is {task.id}: the code of "
            f"{cls.__qualname__} no longer matches the parameters it was registered with "
            "(a parameter added without a default, or a changed version? or a NUL character "
            "in a parameter, which the registry stores as U+FFFD)"
        )
    return task


def _with_tasks(value: Any, load: Loader) -> Any:
    """``value`` with every stored reference to a task (``{"id": ...}``) read back."""
    if isinstance(value, dict):
        if set(value) == {"id"} and isinstance(value["id"], str) and _is_uuid(value["id"]):
            task = load(value["id"])
            if task is not None:
                return task
        return {key: _with_tasks(item, load) for key, item in value.items()}
    if isinstance(value, list):
        return [_with_tasks(item, load) for item in value]
    return value


def _is_uuid(text: str) -> bool:
    try:
        UUID(text)
    except ValueError:
        return False
    return True
