"""Targets: where a task's output lives, on any fsspec filesystem.

``FileTarget`` is one file at a URL (a local path, ``memory://``, ``s3://``, ``gs://``…).
Writes are all-or-nothing: on a local disk the bytes go to a temporary file in the same
directory, which is fsynced and then linked (or renamed) into place, and the directory is
fsynced; on an object store, which has no rename, the bytes are buffered and committed with
one put, conditional (create-only) where the store supports it. An exception or a kill
during a write leaves nothing at the final path.

Targets are write-once by default: a task output, once written, is never overwritten, so a
second writer of the same output gets ``TargetExistsError`` instead of clobbering it.

``DirectoryTarget`` holds several files and is complete only once its commit marker exists.
``exists_many`` checks many targets at once, concurrently on object stores.

A build with locks runs each task under ``commit_guard(check)``: every commit first calls
``check``, which raises once the task's lease has lapsed, so a worker that lost its lock
cannot commit an output in the place of the worker that took the lock over.
"""

import asyncio
import io
import os
import tempfile
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import IO, TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar, cast, overload

from stardag_core.blocking import run_blocking
from stardag_core.exceptions import SerializationError, TargetError, TargetExistsError
from stardag_core.serializers import Serializer

if TYPE_CHECKING:
    from fsspec.spec import AbstractFileSystem

T = TypeVar("T")

COMMIT_MARKER = "_STARDAG_COMMITTED"
"""The file whose presence marks a ``DirectoryTarget`` complete."""

_guard: ContextVar[Callable[[], None] | None] = ContextVar("stardag_commit_guard", default=None)


@contextmanager
def commit_guard(check: Callable[[], None]) -> Iterator[None]:
    """Call ``check`` before every commit of a target inside the block (in this thread or
    asyncio task, and in the threads an executor runs with a copy of its context); a
    commit goes ahead only if ``check`` returns."""
    token = _guard.set(check)
    try:
        yield
    finally:
        _guard.reset(token)


def _check_guard() -> None:
    check = _guard.get()
    if check is not None:
        check()


class Target(Protocol):
    """Anything a task can produce: it only has to say whether it exists."""

    def exists(self) -> bool:
        """Whether the output is there (and complete)."""
        ...


class _Located:
    """A URL and where it resolves: the fsspec filesystem and the path on it.

    A plain local path (no ``scheme://``) is its own path: it is read, written and checked
    with ``os``, and fsspec is imported only if its filesystem is asked for.
    """

    __slots__ = ("_fs", "_local", "_path", "uri")

    def __init__(self, uri: str, fs: "AbstractFileSystem | None") -> None:
        self.uri = uri
        self._fs: AbstractFileSystem | None
        if fs is None and "://" not in uri:
            self._fs, self._path, self._local = None, uri, True
        else:
            self._fs, self._path, self._local = _resolve(uri, fs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.uri == self.uri

    def __hash__(self) -> int:
        return hash(self.uri)

    @property
    def fs(self) -> "AbstractFileSystem":
        """The fsspec filesystem holding the target."""
        if self._fs is None:
            self._fs = _resolve(self.uri, None)[0]
        return self._fs

    @property
    def path(self) -> str:
        """The target's path on its filesystem."""
        return self._path


def _resolve(uri: str, fs: "AbstractFileSystem | None") -> "tuple[AbstractFileSystem, str, bool]":
    """The filesystem, the path on it, and whether ``os`` can use the path directly."""
    # fsspec is imported with the first target that is not a plain local path.
    from stardag_core import filesystems

    if fs is None:
        fs, path = filesystems.resolve(uri)
    else:
        path = fs._strip_protocol(uri)
    return fs, path, filesystems.is_local(fs)


class FileTarget(_Located, Generic[T]):
    """One file at an fsspec URL, with an optional serializer for ``save`` and ``load``."""

    __slots__ = ("serializer", "write_once")

    def __init__(
        self,
        uri: str,
        serializer: Serializer[T] | None = None,
        *,
        write_once: bool = True,
        fs: "AbstractFileSystem | None" = None,
    ) -> None:
        super().__init__(uri, fs)
        self.serializer = serializer
        self.write_once = write_once

    def exists(self) -> bool:
        """Whether the file exists."""
        return os.path.exists(self._path) if self._local else bool(self.fs.exists(self._path))

    def remove(self) -> None:
        """Delete the file if it exists."""
        if self._local:
            if os.path.exists(self._path):
                os.remove(self._path)
        elif self.fs.exists(self._path):
            self.fs.rm_file(self._path)

    @overload
    def open(self, mode: Literal["rb", "wb"]) -> "_Opened[IO[bytes]]": ...
    @overload
    def open(self, mode: Literal["r", "w"] = "r") -> "_Opened[IO[str]]": ...
    def open(self, mode: Literal["r", "rb", "w", "wb"] = "r") -> "_Opened[Any]":
        """Open for reading or an all-or-nothing write; use as a context manager."""
        if mode in ("rb", "r"):
            return _Opened(self._reading(text=mode == "r"))
        if mode in ("wb", "w"):
            return _Opened(self._writing(text=mode == "w"))
        raise ValueError(f"unsupported mode {mode!r}: use 'r', 'rb', 'w' or 'wb'")

    def save(self, value: T) -> None:
        """Serialize ``value`` into the file in one all-or-nothing write."""
        serializer = self._require_serializer()
        with self._writing(text=False) as file:
            try:
                serializer.dump(value, file)
            except Exception as error:
                raise SerializationError(
                    f"{serializer!r} could not write a {type(value).__name__} to {self.uri}: "
                    f"{error}"
                ) from error

    def load(self) -> T:
        """Read and deserialize the file."""
        serializer = self._require_serializer()
        with self._reading(text=False) as file:
            try:
                return serializer.load(file)
            except Exception as error:
                raise SerializationError(
                    f"{serializer!r} could not load {self.uri}: {error}. If the file is "
                    "corrupt, remove it (target.remove()) and build the task again"
                ) from error

    def _require_serializer(self) -> Serializer[T]:
        if self.serializer is None:
            raise TargetError(
                f"{self!r} has no serializer: pass one (FileTarget(uri, JSON())) or use "
                "open() for raw access"
            )
        return self.serializer

    @contextmanager
    def _reading(self, *, text: bool) -> Iterator[Any]:
        try:
            raw = open(self._path, "rb") if self._local else self.fs.open(self._path, "rb")  # noqa: SIM115
        except FileNotFoundError as error:
            raise TargetError(f"{self.uri} does not exist: build the task first") from error
        with raw:
            if text:
                with io.TextIOWrapper(raw, encoding="utf-8") as wrapped:
                    yield wrapped
            else:
                yield raw

    @contextmanager
    def _writing(self, *, text: bool) -> Iterator[Any]:
        if self._local:
            writer = _local_atomic_write(self._path, self.write_once, self.uri)
        else:
            writer = _object_store_write(self.fs, self._path, self.write_once, self.uri)
        with writer as raw:
            if text:
                wrapped = io.TextIOWrapper(raw, encoding="utf-8", write_through=True)
                yield wrapped
                wrapped.detach()
            else:
                yield raw


class _Opened(Generic[T]):
    """The context manager ``FileTarget.open`` returns."""

    def __init__(self, manager: Any) -> None:
        self._manager = manager

    def __enter__(self) -> T:
        return cast(T, self._manager.__enter__())

    def __exit__(self, *exc_info: Any) -> bool | None:
        return cast(bool | None, self._manager.__exit__(*exc_info))


@contextmanager
def _local_atomic_write(path: str, write_once: bool, uri: str) -> Iterator[IO[bytes]]:
    directory, name = os.path.split(path)
    if write_once and os.path.exists(path):
        raise _exists_error(uri)
    try:
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    except FileNotFoundError:
        os.makedirs(directory, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        _commit_local(temporary, path, write_once, uri)
        _fsync_directory(directory)
    finally:
        if os.path.lexists(temporary):
            os.unlink(temporary)


def _commit_local(temporary: str, path: str, write_once: bool, uri: str) -> None:
    _check_guard()
    if write_once:
        try:
            os.link(temporary, path)  # atomic, and fails if the path exists
            return
        except FileExistsError:
            raise _exists_error(uri) from None
        except OSError:
            pass  # the filesystem has no hard links: fall back to rename
        if os.path.exists(path):
            raise _exists_error(uri)
    os.replace(temporary, path)


def _fsync_directory(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def _object_store_write(
    fs: "AbstractFileSystem", path: str, write_once: bool, uri: str
) -> Iterator[IO[bytes]]:
    buffer = io.BytesIO()
    yield buffer
    _check_guard()
    try:
        fs.pipe_file(path, buffer.getvalue(), mode="create" if write_once else "overwrite")
    except FileExistsError:
        raise _exists_error(uri) from None


def _exists_error(uri: str) -> TargetExistsError:
    return TargetExistsError(
        f"{uri} already exists and targets are write-once: remove it first "
        "(target.remove()) to write it again"
    )


class DirectoryTarget(_Located):
    """A directory of files, complete only once committed (its marker file exists).

    Write the files, then commit; an interrupted write leaves the directory incomplete,
    and the next attempt overwrites what it left::

        with target.writing() as directory:
            directory.file("part-0.json", JSON()).save([1, 2])
    """

    __slots__ = ()

    def __init__(self, uri: str, *, fs: "AbstractFileSystem | None" = None) -> None:
        super().__init__(uri.rstrip("/"), fs)

    @property
    def marker(self) -> FileTarget[str]:
        """The commit marker whose presence makes the directory complete."""
        return FileTarget(f"{self.uri}/{COMMIT_MARKER}", fs=self._fs)

    def exists(self) -> bool:
        """Whether the directory has been committed."""
        return self.marker.exists()

    @overload
    def file(self, relpath: str) -> FileTarget[Any]: ...
    @overload
    def file(self, relpath: str, serializer: Serializer[T]) -> FileTarget[T]: ...
    def file(self, relpath: str, serializer: Serializer[Any] | None = None) -> FileTarget[Any]:
        """A file inside the directory (rewritable until the directory is committed)."""
        if relpath.strip("/") == COMMIT_MARKER:
            raise ValueError(f"{COMMIT_MARKER} is reserved for the commit marker")
        return FileTarget(
            f"{self.uri}/{relpath.lstrip('/')}", serializer, write_once=False, fs=self._fs
        )

    def listdir(self) -> list[str]:
        """The relative paths of the files in the directory, the marker left out."""
        base = self._path.rstrip("/") + "/"
        return sorted(
            path[len(base) :]
            for path in self.fs.find(self._path)
            if path.startswith(base) and path[len(base) :] != COMMIT_MARKER
        )

    def commit(self) -> None:
        """Mark the directory complete; ``TargetExistsError`` if it already was."""
        with self.marker.open("w") as marker:
            marker.write("committed\n")

    @contextmanager
    def writing(self) -> Iterator["DirectoryTarget"]:
        """Write files inside the block; the directory is committed if the block succeeds."""
        if self.exists():
            raise _exists_error(self.uri)
        yield self
        self.commit()

    def remove(self) -> None:
        """Delete the directory and everything in it."""
        if self.fs.exists(self._path):
            self.fs.rm(self._path, recursive=True)


def _probe(target: Target) -> "tuple[_Located, str] | None":
    if isinstance(target, FileTarget):
        return target, target.path
    if isinstance(target, DirectoryTarget):
        marker = target.marker
        return marker, marker.path
    return None


async def exists_many_async(targets: Sequence[Target]) -> list[bool]:
    """Whether each target exists, checked in batches and concurrently where it pays.

    Object stores with async clients (S3, GCS) get concurrent requests, bounded in number;
    other filesystems are checked in one batch on a worker thread.
    """
    results: list[bool] = [False] * len(targets)
    local: list[tuple[int, str]] = []
    batches: dict[int, tuple[AbstractFileSystem, list[tuple[int, str]]]] = {}
    others: list[int] = []
    for index, target in enumerate(targets):
        probe = _probe(target)
        if probe is None:
            others.append(index)
            continue
        located, path = probe
        if located._local:
            local.append((index, path))
        else:
            fs = located.fs
            batches.setdefault(id(fs), (fs, []))[1].append((index, path))

    async def check_local() -> None:
        found = await asyncio.to_thread(lambda: [os.path.exists(path) for _, path in local])
        for (index, _), exists in zip(local, found, strict=True):
            results[index] = exists

    async def check_batch(fs: "AbstractFileSystem", items: list[tuple[int, str]]) -> None:
        # Only targets that are not plain local paths get here: fsspec is imported already.
        from stardag_core.filesystems import exists_on

        found = await exists_on(fs, [path for _, path in items])
        for (index, _), exists in zip(items, found, strict=True):
            results[index] = exists

    async def check_others() -> None:
        found = await asyncio.to_thread(lambda: [targets[index].exists() for index in others])
        for index, exists in zip(others, found, strict=True):
            results[index] = exists

    jobs: list[Awaitable[None]] = [check_batch(fs, items) for fs, items in batches.values()]
    if local:
        jobs.append(check_local())
    if others:
        jobs.append(check_others())
    await asyncio.gather(*jobs)
    return results


def exists_many(targets: Iterable[Target]) -> list[bool]:
    """Whether each target exists: the blocking form of ``exists_many_async``."""
    checked = list(targets)
    return run_blocking(lambda: exists_many_async(checked))
