"""Serializers: how a task's output value becomes bytes in its target, and back.

A serializer is picked once, when a task class is defined, from the type the task produces
(``serializer_for``): an explicit ``Annotated[T, Serializer()]`` first, then ``str`` as text,
``bytes`` as is, pandas DataFrame/Series as parquet, numpy arrays as ``.npy``, any type
pydantic can write as JSON as JSON, and pickle as the last resort. A type no serializer can
store fails at import with the fix in the message. Serializers compose (``GZip(JSON())``)
and carry their file extension.
"""

import collections.abc
import gzip
import io
import pickle
import types
import typing
from abc import ABC, abstractmethod
from functools import cache
from typing import IO, Annotated, Any, Generic, TypeVar, cast

from pydantic import PydanticSchemaGenerationError, TypeAdapter
from pydantic.errors import PydanticInvalidForJsonSchema, PydanticUserError

from stardag_core.exceptions import TaskDefinitionError

T = TypeVar("T")

_SERIES_COLUMN = "__stardag_series__"


class Serializer(ABC, Generic[T]):
    """Turns values of one type into bytes and back; ``extension`` names the file type."""

    extension: str

    def for_type(self, tp: Any) -> "Serializer[Any]":
        """This serializer bound to the type it will load (the default ignores the type)."""
        return self

    @abstractmethod
    def dump(self, value: T, file: IO[bytes]) -> None:
        """Write ``value`` to a binary file."""

    @abstractmethod
    def load(self, file: IO[bytes]) -> T:
        """Read a value back from a binary file."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and vars(other) == vars(self)

    def __hash__(self) -> int:
        return hash(type(self))


class JSON(Serializer[Any]):
    """JSON through pydantic: loads back the declared type (models, dates, sets, tuples…)."""

    extension = "json"

    def __init__(self, tp: Any = Any) -> None:
        self._type = tp
        self._adapter: TypeAdapter[Any] = TypeAdapter(tp)

    def for_type(self, tp: Any) -> "JSON":
        return JSON(tp)

    def dump(self, value: Any, file: IO[bytes]) -> None:
        file.write(self._adapter.dump_json(value, warnings="error"))

    def load(self, file: IO[bytes]) -> Any:
        return self._adapter.validate_json(file.read())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JSON) and other._type == self._type

    def __hash__(self) -> int:
        return hash((JSON, repr(self._type)))

    def __repr__(self) -> str:
        return "JSON()" if self._type is Any else f"JSON({type_label(self._type)})"


class Text(Serializer[str]):
    """UTF-8 text."""

    extension = "txt"

    def dump(self, value: str, file: IO[bytes]) -> None:
        file.write(value.encode("utf-8"))

    def load(self, file: IO[bytes]) -> str:
        return file.read().decode("utf-8")


class Bytes(Serializer[bytes]):
    """Bytes as they are."""

    extension = "bin"

    def dump(self, value: bytes, file: IO[bytes]) -> None:
        file.write(value)

    def load(self, file: IO[bytes]) -> bytes:
        return file.read()


class Pickle(Serializer[Any]):
    """Python's pickle, for values no other serializer stores; load only what you trust."""

    extension = "pkl"

    def dump(self, value: Any, file: IO[bytes]) -> None:
        pickle.dump(value, file, protocol=pickle.HIGHEST_PROTOCOL)

    def load(self, file: IO[bytes]) -> Any:
        return pickle.load(file)


class Parquet(Serializer[Any]):
    """A pandas DataFrame or Series as parquet (needs the ``pandas`` extra)."""

    extension = "parquet"

    def __init__(self, series: bool = False) -> None:
        self._series = series

    def for_type(self, tp: Any) -> "Parquet":
        return Parquet(series=getattr(tp, "__name__", "") == "Series")

    def dump(self, value: Any, file: IO[bytes]) -> None:
        if self._series:
            value = value.to_frame(_SERIES_COLUMN if value.name is None else str(value.name))
        value.to_parquet(file)

    def load(self, file: IO[bytes]) -> Any:
        import pandas as pd  # optional dependency, imported on first use

        frame = pd.read_parquet(io.BytesIO(file.read()))
        if not self._series:
            return frame
        series = frame.iloc[:, 0]
        return series.rename(None) if series.name == _SERIES_COLUMN else series


class Numpy(Serializer[Any]):
    """A numpy array as ``.npy``, without pickled objects (needs numpy)."""

    extension = "npy"

    def dump(self, value: Any, file: IO[bytes]) -> None:
        import numpy as np  # optional dependency, imported on first use

        np.save(file, value, allow_pickle=False)

    def load(self, file: IO[bytes]) -> Any:
        import numpy as np

        return np.load(io.BytesIO(file.read()), allow_pickle=False)


class GZip(Serializer[T]):
    """Another serializer's bytes, gzip-compressed: ``GZip(JSON())`` writes ``.json.gz``."""

    def __init__(self, inner: Serializer[T], level: int = 6) -> None:
        self.inner = inner
        self.level = level
        self.extension = f"{inner.extension}.gz"

    def for_type(self, tp: Any) -> "GZip[Any]":
        return GZip(self.inner.for_type(tp), self.level)

    def dump(self, value: T, file: IO[bytes]) -> None:
        with gzip.GzipFile(fileobj=file, mode="wb", compresslevel=self.level, mtime=0) as zipped:
            self.inner.dump(value, cast(IO[bytes], zipped))

    def load(self, file: IO[bytes]) -> T:
        with gzip.GzipFile(fileobj=file, mode="rb") as zipped:
            return self.inner.load(cast(IO[bytes], zipped))

    def __repr__(self) -> str:
        return f"GZip({self.inner!r})"

    def __hash__(self) -> int:
        return hash((GZip, self.inner))


_UNSTORABLE_ORIGINS: tuple[Any, ...] = (
    collections.abc.Iterator,
    collections.abc.AsyncIterator,
    collections.abc.Awaitable,
    collections.abc.Callable,
    types.ModuleType,
    io.IOBase,
)


def serializer_for(tp: Any) -> Serializer[Any]:
    """The serializer for values of type ``tp``; ``TaskDefinitionError`` if none can store it."""
    if typing.get_origin(tp) is Annotated:
        base, *metadata = typing.get_args(tp)
        explicit = [m for m in metadata if isinstance(m, Serializer)]
        if explicit:
            return explicit[-1].for_type(base)
        tp = base
    return _implicit_serializer(tp)


@cache
def _implicit_serializer(tp: Any) -> Serializer[Any]:
    if isinstance(tp, TypeVar):
        raise TaskDefinitionError(
            f"the output type is the unbound type variable {tp}: give the concrete type the "
            "task produces, e.g. AutoTask[int]"
        )
    if tp is None or tp is type(None):
        raise TaskDefinitionError(
            "the output type is None: a task must produce a value to store; annotate what it "
            "returns (e.g. -> dict[str, int])"
        )
    if tp is str:
        return Text()
    if tp is bytes:
        return Bytes()
    if _is_class_from(tp, "pandas", ("DataFrame", "Series")):
        return Parquet().for_type(tp)
    if _is_class_from(tp, "numpy", ("ndarray",)):
        return Numpy()
    origin = typing.get_origin(tp) or tp
    if isinstance(origin, type) and issubclass(origin, _UNSTORABLE_ORIGINS):
        raise TaskDefinitionError(
            f"no serializer can store a value of type {type_label(tp)}: produce a concrete "
            "value instead (e.g. a list rather than an iterator), or choose a serializer "
            f"explicitly with Annotated[{type_label(tp)}, MySerializer()]"
        )
    if tp is not Any and tp is not object and _is_json_able(tp):
        return JSON(tp)
    return Pickle()


def _is_json_able(tp: Any) -> bool:
    try:
        TypeAdapter(tp).json_schema(mode="serialization")
    except (PydanticSchemaGenerationError, PydanticInvalidForJsonSchema, PydanticUserError):
        return False
    return True


def _is_class_from(tp: Any, package: str, names: tuple[str, ...]) -> bool:
    # Checked by name so that defining a task never imports pandas or numpy.
    module = getattr(tp, "__module__", "") or ""
    return (
        isinstance(tp, type)
        and (module == package or module.startswith(f"{package}."))
        and tp.__name__ in names
    )


def type_label(tp: Any) -> str:
    """A readable name for a type: ``int``, ``list[int]``, ``Iterator[int]``."""
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__qualname__
    return repr(tp).replace("typing.", "")
