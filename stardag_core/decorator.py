"""The ``@task`` decorator: a typed function becomes an ``AutoTask`` class.

The function's parameters become the task's parameters and its return annotation chooses
the serializer. A parameter typed ``Depends[T]`` takes a task whose output loads as ``T``
(also inside lists and dicts: ``list[Depends[T]]``); the function receives the loaded value::

    @sd.task
    def get_range(limit: int) -> list[int]:
        return list(range(limit))

    @sd.task
    def get_sum(integers: sd.Depends[list[int]]) -> int:
        return sum(integers)

    total = get_sum(integers=get_range(limit=4))
"""

import inspect
import types
import typing
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias, TypeVar, cast, overload

from stardag_core.auto_task import AutoTask
from stardag_core.exceptions import TaskDefinitionError
from stardag_core.task_loads import task_loads
from stardag_core.tasks import Task

R = TypeVar("R")
T = TypeVar("T")

OutputPath: TypeAlias = str | Callable[[Any], str]
"""A custom output path under the target root: ``"{task.region}/{task.id}.json"`` or a
callable taking the task and returning that path."""


@dataclass(frozen=True)
class _DependsMarker:
    """Marks a ``Depends`` parameter: the function receives the loaded value."""


if TYPE_CHECKING:
    Depends: TypeAlias = Annotated[T, _DependsMarker()]
else:

    class Depends:
        """``Depends[T]``: a ``@task`` parameter given as a task; the function gets its value."""

        def __class_getitem__(cls, tp: Any) -> Any:
            return Annotated[task_loads(tp), _DependsMarker()]


@overload
def task(fn: Callable[..., Coroutine[Any, Any, R]], /) -> Callable[..., AutoTask[R]]: ...
@overload
def task(fn: Callable[..., R], /) -> Callable[..., AutoTask[R]]: ...
@overload
def task(
    *,
    name: str | None = None,
    namespace: str | None = None,
    version: str | int | None = None,
    target_root: str | None = None,
    output_path: OutputPath | None = None,
) -> Callable[[Callable[..., R]], Callable[..., AutoTask[R]]]: ...
def task(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    namespace: str | None = None,
    version: str | int | None = None,
    target_root: str | None = None,
    output_path: OutputPath | None = None,
) -> Any:
    """Turn a typed function into a task class (an ``AutoTask`` of its return type)."""

    def decorate(function: Callable[..., Any]) -> type[AutoTask[Any]]:
        return _task_class(
            function,
            name=name,
            namespace=namespace,
            version=version,
            target_root=target_root,
            output_path=output_path,
        )

    return decorate if fn is None else decorate(fn)


def _task_class(
    fn: Callable[..., Any],
    *,
    name: str | None,
    namespace: str | None,
    version: str | int | None,
    target_root: str | None,
    output_path: OutputPath | None,
) -> type[AutoTask[Any]]:
    hints = typing.get_type_hints(fn, include_extras=True)
    if "return" not in hints:
        raise TaskDefinitionError(
            f"@task {fn.__qualname__} needs a return annotation: it chooses how the output "
            "is stored (e.g. -> dict[str, int])"
        )
    annotations: dict[str, Any] = {}
    defaults: dict[str, Any] = {}
    for parameter in inspect.signature(fn).parameters.values():
        if parameter.kind not in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
            raise TaskDefinitionError(
                f"@task {fn.__qualname__}: parameter {parameter.name!r} is "
                f"{parameter.kind.description}; task parameters are passed by name, so use "
                "plain or keyword-only parameters"
            )
        annotations[parameter.name] = hints.get(parameter.name, Any)
        if parameter.default is not parameter.empty:
            defaults[parameter.name] = parameter.default
    depends = frozenset(field for field, tp in annotations.items() if _mentions_depends(tp))

    def arguments(self: AutoTask[Any]) -> dict[str, Any]:
        return {
            field: _load(getattr(self, field)) if field in depends else getattr(self, field)
            for field in annotations
        }

    if inspect.iscoroutinefunction(fn):

        async def run_async(self: AutoTask[Any]) -> None:
            self.output().save(await fn(**arguments(self)))

        run: Callable[..., Any] = run_async
    else:

        def run_sync(self: AutoTask[Any]) -> None:
            self.output().save(fn(**arguments(self)))

        run = run_sync

    body: dict[str, Any] = {
        "__annotations__": annotations,
        **defaults,
        "__module__": fn.__module__,
        "__qualname__": fn.__qualname__,
        "__doc__": fn.__doc__,
        "__wrapped__": fn,
        "run": run,
    }
    if output_path is not None:
        body["output_relpath"] = _custom_relpath(output_path)
    keywords = {
        key: value
        for key, value in (
            ("name", name),
            ("task_namespace", namespace),
            ("version", version),
            ("target_root", target_root),
        )
        if value is not None
    }
    cls: type[AutoTask[Any]] = types.new_class(
        fn.__name__,
        (cast(Any, AutoTask)[hints["return"]],),
        keywords,
        lambda namespace_: namespace_.update(body),
    )
    return cls


def _custom_relpath(output_path: OutputPath) -> Callable[[AutoTask[Any]], str]:
    def output_relpath(self: AutoTask[Any]) -> str:
        if isinstance(output_path, str):
            return output_path.format(task=self)
        return output_path(self)

    return output_relpath


def _mentions_depends(tp: Any) -> bool:
    if typing.get_origin(tp) is Annotated and any(
        isinstance(meta, _DependsMarker) for meta in tp.__metadata__
    ):
        return True
    return any(_mentions_depends(arg) for arg in typing.get_args(tp))


def _load(value: Any) -> Any:
    """``value`` with every task in it replaced by its loaded output."""
    if isinstance(value, Task):
        return value.output().load()  # type: ignore[union-attr]
    if isinstance(value, list | tuple):
        return type(value)(_load(item) for item in value)
    if isinstance(value, Mapping):
        return {key: _load(item) for key, item in value.items()}
    return value
