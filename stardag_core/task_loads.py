"""TaskLoads[T]: a parameter that is a task whose output loads as ``T``.

Any task class qualifies whose declared output type is compatible with ``T`` (the same
type, a subclass, or ``T`` is ``Any``); the check runs when the task is constructed, and a
stored task is read back as its own class::

    class Total(sd.AutoTask[int]):
        numbers: sd.TaskLoads[list[int]]

        def run(self) -> None:
            self.output().save(sum(self.numbers.output().load()))
"""

import types
import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias, TypeVar, Union

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

from stardag_core.auto_task import AutoTask
from stardag_core.exceptions import TaskDefinitionError
from stardag_core.serializers import type_label
from stardag_core.tasks import Task

T = TypeVar("T")


def loads_compatible(produced: Any, wanted: Any) -> bool:
    """Whether a task producing ``produced`` can stand where ``wanted`` is expected."""
    if wanted is Any or produced == wanted:
        return True
    if typing.get_origin(wanted) in (Union, types.UnionType):
        return any(loads_compatible(produced, option) for option in typing.get_args(wanted))
    if isinstance(produced, type) and isinstance(wanted, type):
        return issubclass(produced, wanted)
    produced_origin, wanted_origin = typing.get_origin(produced), typing.get_origin(wanted)
    if produced_origin is None or produced_origin != wanted_origin:
        return (
            isinstance(wanted, type)
            and produced_origin is not None
            and issubclass(produced_origin, wanted)
        )
    produced_args, wanted_args = typing.get_args(produced), typing.get_args(wanted)
    return len(produced_args) == len(wanted_args) and all(
        loads_compatible(p, w) for p, w in zip(produced_args, wanted_args, strict=True)
    )


@dataclass(frozen=True)
class LoadsAs:
    """Validation metadata: the task must produce a value of ``type``."""

    type: Any

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self.check, handler(source))

    def check(self, task: Task) -> Task:
        """Accept ``task`` if what it loads is compatible with ``self.type``."""
        produced = type(task).__loads_type__
        if produced is None:
            raise ValueError(
                f"{type(task).__qualname__} does not declare what its output loads as: make it "
                f"an AutoTask[{type_label(self.type)}] or annotate output() -> FileTarget[...]"
            )
        if not loads_compatible(produced, self.type):
            raise ValueError(
                f"expected a task whose output loads as {type_label(self.type)}, got "
                f"{type(task).__qualname__}, whose output loads as {type_label(produced)}"
            )
        return task


def task_loads(tp: Any) -> Any:
    """The runtime form of ``TaskLoads[tp]``."""
    if isinstance(tp, str | typing.ForwardRef):
        raise TaskDefinitionError(
            f"TaskLoads[{tp!r}]: give the type itself, not a string, so it can be checked "
            "when the class is defined"
        )
    return Annotated[Task, LoadsAs(tp)]


if TYPE_CHECKING:
    TaskLoads: TypeAlias = AutoTask[T]
else:

    class TaskLoads:
        """``TaskLoads[T]``: a task parameter whose output loads as ``T``."""

        def __class_getitem__(cls, tp: Any) -> Any:
            return task_loads(tp)
