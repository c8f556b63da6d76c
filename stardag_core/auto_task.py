"""AutoTask: a task whose output is one file, at a path derived from its id.

The output lives at
``<target root>/<namespace>/<name>/v<version>/<id[:2]>/<id[2:4]>/<id>.<ext>`` (namespace
dots become slashes; empty parts are left out), serialized by the serializer chosen for
``T`` when the class is defined.
"""

from typing import Any, ClassVar, Generic, TypeVar

from stardag_core.config import DEFAULT_TARGET_ROOT, get_settings
from stardag_core.exceptions import TaskDefinitionError
from stardag_core.serializers import Serializer, serializer_for
from stardag_core.targets import FileTarget
from stardag_core.tasks import Task

T = TypeVar("T")


class AutoTask(Task, Generic[T]):
    """A task producing one value of type ``T``, stored where its id says.

    ::

        class Add(sd.AutoTask[int]):
            a: int
            b: int

            def run(self) -> None:
                self.output().save(self.a + self.b)
    """

    __serializer__: ClassVar[Serializer[Any]]
    __target_root__: ClassVar[str] = DEFAULT_TARGET_ROOT

    def __init_subclass__(cls, *, target_root: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if target_root is not None:
            cls.__target_root__ = target_root

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if not cls.is_concrete():
            return
        output_type = _output_type(cls)
        try:
            cls.__serializer__ = serializer_for(output_type)
        except TaskDefinitionError as error:
            raise TaskDefinitionError(f"{cls.__qualname__}: {error}") from None
        cls.__loads_type__ = _strip_annotated(output_type)

    def output(self) -> FileTarget[T]:
        """The file holding this task's value."""
        root = get_settings().target_root(self.__target_root__)
        return FileTarget(f"{root}/{self.output_relpath()}", self.__serializer__)

    def output_relpath(self) -> str:
        """The output's path under its target root; override it to choose another."""
        return default_relpath(self, self.__serializer__.extension)

    def load(self) -> T:
        """The stored value: ``self.output().load()``."""
        return self.output().load()


def default_relpath(task: Task, extension: str) -> str:
    """``<namespace>/<name>/v<version>/<id[:2]>/<id[2:4]>/<id>.<ext>``, empty parts left out."""
    task_id = str(task.id)
    parts = (
        task.get_namespace().replace(".", "/"),
        task.get_name(),
        f"v{task.get_version()}" if task.get_version() else "",
        task_id[:2],
        task_id[2:4],
        f"{task_id}.{extension}" if extension else task_id,
    )
    return "/".join(part for part in parts if part)


def _output_type(cls: type[AutoTask[Any]]) -> Any:
    for klass in cls.__mro__:
        generic = getattr(klass, "__pydantic_generic_metadata__", None)
        if generic and generic["origin"] is AutoTask and generic["args"]:
            return generic["args"][0]
    raise TaskDefinitionError(
        f"{cls.__qualname__} does not say what it produces: subclass AutoTask[T] with the "
        "type of its output, e.g. AutoTask[int]"
    )


def _strip_annotated(tp: Any) -> Any:
    return getattr(tp, "__origin__", tp) if hasattr(tp, "__metadata__") else tp
