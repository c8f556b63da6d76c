"""Tasks: frozen pydantic models whose parameters determine their id, and the id their output.

A task class declares its parameters as pydantic fields and implements ``run`` (plain,
``async``, or a generator that yields the tasks it needs once running: dynamic
dependencies), ``requires`` and ``output``. Its family, the ``(namespace, name)`` pair,
defaults to the module's namespace (``sd.namespace``) and the class name; set either, and
the version, with class keywords (``task_namespace``, since pydantic's metaclass takes
``namespace`` for itself)::

    class Train(sd.AutoTask[float], task_namespace="ml", version="2"):
        epochs: int
"""

import enum
import math
import types
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping, Sequence
from typing import (
    Annotated,
    Any,
    ClassVar,
    Generic,
    Literal,
    NamedTuple,
    Self,
    TypeAlias,
    TypeVar,
    Union,
    cast,
    get_args,
    get_origin,
    get_type_hints,
)
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    ModelWrapValidatorHandler,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    model_serializer,
    model_validator,
)

from stardag_core import families
from stardag_core.assets import RegistryAsset
from stardag_core.exceptions import TaskDefinitionError
from stardag_core.params import UNSET, Param
from stardag_core.recall import TaskSource, task_from_registry
from stardag_core.targets import FileTarget, Target
from stardag_core.task_id import (
    canonical_json_str,
    canonical_json_value,
    sorted_set_items,
    task_id,
    task_id_of_json,
)

TaskStruct: TypeAlias = Union["Task", Sequence["TaskStruct"], Mapping[str, "TaskStruct"], None]
"""What ``requires`` returns: a task, or tasks nested in lists, tuples and dicts, or None."""

TargetStruct: TypeAlias = Target | Sequence["TargetStruct"] | Mapping[str, "TargetStruct"] | None
"""What ``output`` returns: a target, or targets nested in lists, tuples and dicts."""

RunResult: TypeAlias = (
    Iterator[TaskStruct] | AsyncIterator[TaskStruct] | Coroutine[Any, Any, None] | None
)
"""What ``run`` returns: nothing, a (possibly async) generator yielding dynamic
dependencies, or a coroutine."""

_RESERVED_FIELDS = frozenset({"id", "version"})
_HASH_ROOT = "stardag.hash_root"
_NESTED_HASH_CONTEXT = {_HASH_ROOT: "no task is the root: every task is nested"}
_SCALARS = (str, int, float, bool, type(None), UUID)
_T = TypeVar("_T")


class _computed_once(Generic[_T]):
    """``functools.cached_property`` without its per-access lock (Python 3.11): ids are hot."""

    def __init__(self, compute: Callable[[Any], _T]) -> None:
        self._compute = compute
        self._name = compute.__name__
        self.__doc__ = compute.__doc__

    def __get__(self, instance: Any, owner: type | None = None) -> _T:
        if instance is None:
            return self  # type: ignore[return-value]
        value = instance.__dict__[self._name] = self._compute(instance)
        return value


class _FieldKind(enum.Enum):
    PLAIN = "plain"  # int, str, bool, float, None: the value is its JSON form
    TASK = "task"  # a task (or None): contributes {"id": ...}
    ADAPTED = "adapted"  # anything else: pydantic serializes the field alone


class _IdField(NamedTuple):
    """How one parameter enters the id payload."""

    name: str
    key: str  # the canonical text of the payload key and its colon: '"name":'
    kind: _FieldKind
    adapter: TypeAdapter[Any] | None


class _Unplanned(enum.Enum):
    UNPLANNED = "unplanned"  # the class's id plan is made on first use


class _IdPlan(NamedTuple):
    """How to build a class's id payload, and its canonical text, field by field."""

    fields: tuple[_IdField, ...]
    # The canonical text's members in key order: an _IdField for each parameter, and
    # for the constant members ("__name", "__namespace", "version") their ready text.
    text: tuple[str | _IdField, ...]


class Task(BaseModel):
    """A unit of work with a deterministic id: its family, version and parameters."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        polymorphic_serialization=True,
        ignored_types=(_computed_once,),
    )

    __task_namespace__: ClassVar[str] = ""
    __task_name__: ClassVar[str] = "Task"
    __task_version__: ClassVar[str] = ""
    __loads_type__: ClassVar[Any] = None
    """The type ``output().load()`` returns, when the class declares it; else None."""
    __hash_excluded__: ClassVar[frozenset[str]] = frozenset()
    __compat_defaults__: ClassVar[Mapping[str, Any]] = {}
    __id_plan__: ClassVar[_IdPlan | _Unplanned | None] = _Unplanned.UNPLANNED

    def __init_subclass__(
        cls,
        *,
        task_namespace: str | None = None,
        name: str | None = None,
        version: str | int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)
        cls.__task_name__ = cls.__name__ if name is None else name
        cls.__task_namespace__ = (
            families.namespace_of_module(cls.__module__)
            if task_namespace is None
            else task_namespace
        )
        if version is not None:
            cls.__task_version__ = str(version)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        cls.__id_plan__ = _Unplanned.UNPLANNED  # not the parent's
        reserved = _RESERVED_FIELDS.intersection(cls.model_fields)
        if reserved:
            raise TaskDefinitionError(
                f"{cls.__qualname__} declares the parameter {sorted(reserved)[0]!r}, a name "
                "stardag reserves (task.id, the version keyword): rename the parameter"
            )
        cls.__hash_excluded__, cls.__compat_defaults__ = _id_options(cls)
        if "output" in cls.__dict__:
            cls.__loads_type__ = _loads_type_of_output(cls)
        if cls.is_concrete():
            families.register(cls)

    @classmethod
    def is_concrete(cls) -> bool:
        """Whether this is a task class proper, not a generic base or its parametrization."""
        generic = cls.__pydantic_generic_metadata__
        if generic["origin"] is not None:
            return False
        # A subclass of a bare generic (class X(AutoTask)) is concrete and gets its error;
        # one that passes type variables on (class X(AutoTask[T])) is a generic base.
        return not generic["parameters"] or not (
            Generic in cls.__bases__ or any(_generic_args(base) for base in cls.__bases__)
        )

    @classmethod
    def get_namespace(cls) -> str:
        """The family namespace ("" when none is set)."""
        return cls.__task_namespace__

    @classmethod
    def get_name(cls) -> str:
        """The family name (the class name unless ``name=`` is given)."""
        return cls.__task_name__

    @classmethod
    def get_version(cls) -> str:
        """The version ("" when none is set); changing it changes every id of the class."""
        return cls.__task_version__

    @_computed_once
    def id(self) -> UUID:
        """The task id: computed once, from the family, version and parameters."""
        plan = _plan_of(type(self))
        text = None if plan is None else self._id_json(plan)
        return task_id(self.id_payload()) if text is None else task_id_of_json(text)

    @_computed_once
    def _nested_id_json(self) -> str:
        """The canonical text of this task nested as a parameter: ``{"id":"<id>"}``."""
        return f'{{"id":"{self.id}"}}'

    def _id_json(self, plan: _IdPlan) -> str | None:
        """``canonical_json(self.id_payload())``, written without building the payload
        (it costs less than half as much); None where only the payload will do."""
        values = self.__dict__
        compat_defaults = type(self).__compat_defaults__
        parts: list[str] = []
        for part in plan.text:
            if isinstance(part, str):
                parts.append(part)
                continue
            name, key, kind, adapter = part
            value = values[name]
            if compat_defaults and name in compat_defaults and value == compat_defaults[name]:
                continue
            if kind is _FieldKind.PLAIN:
                kind_of_value = type(value)
                if kind_of_value is str:
                    parts.append(key + canonical_json_str(value))
                elif kind_of_value is int:
                    parts.append(key + int.__repr__(value))
                elif kind_of_value is float:
                    if not math.isfinite(value):
                        return None
                    parts.append(key + float.__repr__(value))
                else:
                    parts.append(key + canonical_json_value(value))
            elif kind is _FieldKind.TASK:
                parts.append(key + ("null" if value is None else value._nested_id_json))
            else:
                adapted = cast(TypeAdapter[Any], adapter)
                dumped = adapted.dump_python(value, mode="json", context=_NESTED_HASH_CONTEXT)
                parts.append(key + canonical_json_value(_order_sets(value, dumped)))
        return "{" + ",".join(parts) + "}"

    def id_payload(self) -> dict[str, Any]:
        """The canonical payload the id hashes (nested tasks appear as their id)."""
        cls = type(self)
        plan = _plan_of(cls)
        if plan is None:
            return pydantic_id_payload(self)
        # The fast path: the same payload as pydantic's, built field by field.
        values = self.__dict__
        payload: dict[str, Any] = {
            "__namespace": cls.__task_namespace__,
            "__name": cls.__task_name__,
            "version": cls.__task_version__,
        }
        for name, _, kind, adapter in plan.fields:
            value = values[name]
            if kind is _FieldKind.PLAIN:
                if type(value) is float and not math.isfinite(value):
                    return pydantic_id_payload(self)
                payload[name] = value
            elif kind is _FieldKind.TASK:
                payload[name] = None if value is None else {"id": str(value.id)}
            else:
                adapted = cast(TypeAdapter[Any], adapter)
                dumped = adapted.dump_python(value, mode="json", context=_NESTED_HASH_CONTEXT)
                payload[name] = _order_sets(value, dumped)
        for name, default in cls.__compat_defaults__.items():
            if values[name] == default:
                del payload[name]
        return payload

    def requires(self) -> TaskStruct:
        """The tasks this task needs; by default, every task among its parameters."""
        found = {
            name: value
            for name in type(self).model_fields
            if _holds_task(value := getattr(self, name))
        }
        return found or None

    def run(self) -> RunResult:
        """Produce the output; may be ``async``, or a generator yielding dynamic dependencies."""
        raise NotImplementedError(
            f"{type(self).__qualname__} does not implement run(): define it to produce the output"
        )

    def output(self) -> TargetStruct:
        """Where the task's output lives: a target or a struct of targets (None: no output)."""
        return None

    def complete(self) -> bool:
        """Whether the task is done: by default, whether all its output targets exist."""
        targets = flatten_targets(self.output())
        return bool(targets) and all(target.exists() for target in targets)

    @classmethod
    def from_registry(cls, task_id: str | UUID, source: TaskSource | None = None) -> "Task":
        """The task registered as ``task_id``, rebuilt from the registry (by default the
        configured one; ``source`` may be an open ``stardag_core.client.RegistryClient``),
        so that a notebook can load any registered output: ``Task.from_registry(id).load()``.
        Called on a task class, the task must be of that class."""
        # The registry client is the optional `registry` extra: imported only when used.
        from stardag_core.client import open_client

        if source is None:
            with open_client() as client:
                task = task_from_registry(str(task_id), client)
        else:
            task = task_from_registry(str(task_id), source)
        if not isinstance(task, cls):
            raise TypeError(
                f"task {task_id} is a {type(task).__qualname__}, not a {cls.__qualname__}: "
                "call Task.from_registry to take any task"
            )
        return task

    def registry_assets(self) -> list[RegistryAsset]:
        """Documents to publish with the task in the registry once it completed (a markdown
        report, JSON metrics); none by default. Derive them from the output (load it)."""
        return []

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy; with ``update``, a new task (validated) with its own id."""
        if update:
            fields = {name: getattr(self, name) for name in type(self).model_fields}
            return self.model_validate({**fields, **update})
        return super().model_copy(deep=deep)

    def __hash__(self) -> int:
        return hash(self.id)

    @model_serializer(mode="wrap")
    def _serialize(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> dict[str, Any]:
        context = info.context
        hash_root = context.get(_HASH_ROOT) if isinstance(context, dict) else None
        hashing = hash_root is not None
        if hashing and hash_root is not self:
            return {"id": str(self.id)}
        data: dict[str, Any] = handler(self)
        cls = type(self)
        if hashing:
            for name in cls.__hash_excluded__:
                data.pop(name, None)
            for name, default in cls.__compat_defaults__.items():
                if getattr(self, name) == default:
                    data.pop(name, None)
        for name, dumped in data.items():
            raw = getattr(self, name)
            if not isinstance(raw, _SCALARS) and not isinstance(raw, Task):
                data[name] = _order_sets(raw, dumped)
        return {
            "__namespace": cls.__task_namespace__,
            "__name": cls.__task_name__,
            "version": cls.__task_version__,
            **data,
        }

    @model_validator(mode="wrap")
    @classmethod
    def _deserialize(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        if (type(data) is dict and not cls.__compat_defaults__) and not (
            "__name" in data or "version" in data
        ):
            return handler(data)  # keyword construction: the common case, kept cheap
        if not isinstance(data, Mapping):
            return handler(data)
        if "__name" in data:
            try:
                stored_class = families.lookup(data.get("__namespace", ""), data["__name"])
            except KeyError as error:
                raise ValueError(error.args[0]) from None
            if stored_class is not cls:
                if not issubclass(stored_class, cls):
                    raise ValueError(
                        f"expected a {cls.__qualname__} task, got a "
                        f"{stored_class.__qualname__} task, which is not a subclass of it"
                    )
                return stored_class.model_validate(data)
            data = {
                key: value for key, value in data.items() if key not in ("__name", "__namespace")
            }
        if "version" in data:
            data = dict(data)
            stored_version = data.pop("version")
            if stored_version != cls.__task_version__:
                raise ValueError(
                    f"the stored task has version {stored_version!r} but {cls.__qualname__} is "
                    f"at version {cls.__task_version__!r}: its id and output would differ"
                )
        missing = cls.__compat_defaults__.keys() - data.keys()
        if missing:
            data = {**data, **{name: cls.__compat_defaults__[name] for name in missing}}
        return handler(data)


def pydantic_id_payload(task: Task) -> dict[str, Any]:
    """The id payload by pydantic's serializer: the reference the fast path must equal."""
    return task.__pydantic_serializer__.to_python(  # type: ignore[no-any-return]
        task, mode="json", context={_HASH_ROOT: task}
    )


def _plan_of(cls: type[Task]) -> _IdPlan | None:
    """The class's id plan, made on first use (and kept on the class itself)."""
    plan = cls.__id_plan__
    if plan is _Unplanned.UNPLANNED:
        plan = cls.__id_plan__ = _id_plan(cls)
    return plan


def _id_plan(cls: type[Task]) -> _IdPlan | None:
    """How to build the id payload field by field; None when only pydantic knows how."""
    decorators = cls.__pydantic_decorators__
    if decorators.field_serializers or any(key.startswith("ser_") for key in cls.model_config):
        return None
    fields: list[_IdField] = []
    for name, field in cls.model_fields.items():
        if name in cls.__hash_excluded__ or field.exclude:
            continue
        key = canonical_json_str(name) + ":"
        validation_only = all(_validation_only(meta) for meta in field.metadata)
        annotation = field.annotation
        if validation_only and _is_plain(annotation):
            fields.append(_IdField(name, key, _FieldKind.PLAIN, None))
        elif validation_only and _is_task_type(annotation):
            fields.append(_IdField(name, key, _FieldKind.TASK, None))
        else:
            full = Annotated[annotation, *field.metadata] if field.metadata else annotation
            adapter: TypeAdapter[Any] = TypeAdapter(cast(Any, full))
            fields.append(_IdField(name, key, _FieldKind.ADAPTED, adapter))
    constants = {
        "__namespace": cls.__task_namespace__,
        "__name": cls.__task_name__,
        "version": cls.__task_version__,
    }
    members: dict[str, str | _IdField] = {
        name: canonical_json_str(name) + ":" + canonical_json_str(value)
        for name, value in constants.items()
    }
    members.update((field.name, field) for field in fields)
    # Constant members next to each other are joined into one part: fewer steps per id.
    text: list[str | _IdField] = []
    for name in sorted(members):
        member = members[name]
        if isinstance(member, str) and text and isinstance(text[-1], str):
            text[-1] += "," + member
        else:
            text.append(member)
    return _IdPlan(tuple(fields), tuple(text))


_PLAIN_TYPES = frozenset({int, str, bool, float, type(None)})


def _optional_members(annotation: Any) -> tuple[Any, ...]:
    if get_origin(annotation) in (Union, types.UnionType):
        return get_args(annotation)
    return (annotation,)


def _is_plain(annotation: Any) -> bool:
    return all(
        member in _PLAIN_TYPES
        or (
            get_origin(member) is Literal
            and all(type(value) in (int, str, bool) for value in get_args(member))
        )
        for member in _optional_members(annotation)
    )


def _is_task_type(annotation: Any) -> bool:
    return all(
        member is type(None) or (isinstance(member, type) and issubclass(member, Task))
        for member in _optional_members(annotation)
    )


def _validation_only(metadata: object) -> bool:
    # stardag's markers and annotated_types' constraints never change how a value serializes.
    module = type(metadata).__module__
    return module.startswith("stardag_core.") or module == "annotated_types"


def flatten_tasks(struct: TaskStruct) -> list[Task]:
    """The tasks in a task struct, in order."""
    if struct is None:
        return []
    if isinstance(struct, Task):
        return [struct]
    values = struct.values() if isinstance(struct, Mapping) else struct
    return [task for value in values for task in flatten_tasks(value)]


def flatten_targets(struct: TargetStruct) -> list[Target]:
    """The targets in a target struct, in order."""
    if struct is None:
        return []
    if isinstance(struct, Mapping):
        return [target for value in struct.values() for target in flatten_targets(value)]
    if isinstance(struct, Sequence):
        return [target for value in struct for target in flatten_targets(value)]
    return [struct]


def _holds_task(value: Any) -> bool:
    if isinstance(value, Task):
        return True
    if isinstance(value, list | tuple):
        return any(_holds_task(item) for item in value)
    if isinstance(value, Mapping):
        return any(_holds_task(item) for item in value.values())
    return False


def _id_options(cls: type[Task]) -> tuple[frozenset[str], dict[str, Any]]:
    excluded: set[str] = set()
    compat_defaults: dict[str, Any] = {}
    for name, field in cls.model_fields.items():
        for option in field.metadata:
            if not isinstance(option, Param):
                continue
            if option.hash_exclude:
                excluded.add(name)
            if option.compat_default is not UNSET:
                compat_defaults[name] = option.compat_default
    return frozenset(excluded), compat_defaults


def _generic_args(cls: type) -> tuple[Any, ...]:
    metadata = getattr(cls, "__pydantic_generic_metadata__", None)
    return tuple(metadata["args"]) if metadata else ()


def _loads_type_of_output(cls: type[Task]) -> Any:
    hint = get_type_hints(cls.output).get("return")
    return get_args(hint)[0] if get_origin(hint) is FileTarget else None


def _order_sets(raw: Any, dumped: Any) -> Any:
    """``dumped`` with every set (dumped as a list) in canonical order, at any depth."""
    if isinstance(raw, set | frozenset):
        if not isinstance(dumped, list) or len(dumped) != len(raw):
            return dumped
        return sorted_set_items([_order_sets(r, d) for r, d in zip(raw, dumped, strict=True)])
    if isinstance(raw, list | tuple):
        if not isinstance(dumped, list) or len(dumped) != len(raw):
            return dumped
        return [_order_sets(r, d) for r, d in zip(raw, dumped, strict=True)]
    if isinstance(raw, Mapping):
        if not isinstance(dumped, dict) or len(dumped) != len(raw):
            return dumped
        return {
            key: _order_sets(r, d) for r, (key, d) in zip(raw.values(), dumped.items(), strict=True)
        }
    if isinstance(raw, BaseModel) and not isinstance(raw, Task) and isinstance(dumped, dict):
        return {
            key: _order_sets(getattr(raw, key), d) if key in type(raw).model_fields else d
            for key, d in dumped.items()
        }
    return dumped
