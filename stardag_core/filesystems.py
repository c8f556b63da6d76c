"""fsspec filesystems: which one a URL lives on, and existence checks of many paths on one.

Only targets that are not plain local paths come here: importing fsspec costs about as much
as the rest of stardag's own modules (it scans every installed distribution's entry points),
and a local path is read, written and checked with ``os`` without it.
"""

import asyncio
import os
from functools import lru_cache
from typing import Any

import fsspec
from fsspec.asyn import AsyncFileSystem
from fsspec.implementations.local import LocalFileSystem
from fsspec.spec import AbstractFileSystem

from stardag_core.exceptions import TargetError

_EXISTS_CONCURRENCY = 64

# Object stores must not answer existence checks from a listing cached before another
# worker wrote the object.
_FILESYSTEM_OPTIONS: dict[str, dict[str, Any]] = {
    "s3": {"use_listings_cache": False},
    "s3a": {"use_listings_cache": False},
    "gs": {"use_listings_cache": False},
    "gcs": {"use_listings_cache": False},
}


def resolve(uri: str) -> tuple[AbstractFileSystem, str]:
    """The fsspec filesystem and the path on it for a URL."""
    root, sep, _ = uri.partition("://")
    if not sep:
        return local_filesystem(), uri
    fs = _filesystem(root)
    return fs, fs._strip_protocol(uri)


def local_filesystem() -> AbstractFileSystem:
    """fsspec's filesystem of local paths."""
    return _filesystem("file")


def is_local(fs: AbstractFileSystem) -> bool:
    """Whether ``fs`` is the local disk, whose paths ``os`` can use directly."""
    return isinstance(fs, LocalFileSystem)


@lru_cache(maxsize=64)
def _filesystem(protocol: str) -> AbstractFileSystem:
    try:
        return fsspec.filesystem(protocol, **_FILESYSTEM_OPTIONS.get(protocol, {}))
    except ImportError as error:
        raise TargetError(
            f"the {protocol}:// filesystem needs a package that is not installed: {error}"
        ) from error
    except ValueError as error:
        raise TargetError(
            f"unknown filesystem protocol {protocol!r}: use a local path or a URL that fsspec "
            "knows (s3://, gs://, memory://, …)"
        ) from error


async def exists_on(fs: AbstractFileSystem, paths: list[str]) -> list[bool]:
    """Whether each path exists on ``fs``: concurrent requests on object stores with async
    clients (S3, GCS), one batch on a worker thread otherwise."""
    if isinstance(fs, AsyncFileSystem):
        return await _exists_concurrently(fs, paths)
    if isinstance(fs, LocalFileSystem):
        return await asyncio.to_thread(lambda: [os.path.exists(path) for path in paths])
    return await asyncio.to_thread(lambda: [bool(fs.exists(path)) for path in paths])


async def _exists_concurrently(fs: AsyncFileSystem, paths: list[str]) -> list[bool]:
    # fsspec async filesystems run their own event loop on a thread: run the batch there.
    async def on_fs_loop() -> list[bool]:
        limit = asyncio.Semaphore(_EXISTS_CONCURRENCY)

        async def one(path: str) -> bool:
            async with limit:
                return bool(await fs._exists(path))

        return list(await asyncio.gather(*(one(path) for path in paths)))

    if fs.asynchronous:
        return await on_fs_loop()
    future = asyncio.run_coroutine_threadsafe(on_fs_loop(), fs.loop)
    return await asyncio.wrap_future(future)
