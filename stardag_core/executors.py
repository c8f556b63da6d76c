"""Executors: where task code runs. The scheduler stays on one event loop in any case.

- ``InlineExecutor``: on the event loop's thread, one task at a time (for debugging).
- ``ThreadExecutor``: a thread pool (the default); right for I/O-bound tasks.
- ``ProcessExecutor``: a process pool; right for CPU-bound pure-Python tasks.
- ``DaskExecutor``: a Dask distributed cluster, local or remote: the path to many machines.

Task classes must be importable in worker processes (defined in a module, not in a
function) for the process and Dask executors.
"""

import asyncio
import contextvars
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from stardag_core.exceptions import StardagError

T = TypeVar("T")


class Executor(Protocol):
    """Runs task code: ``slots`` at once, in this process unless ``remote``."""

    slots: int
    remote: bool

    async def start(self) -> None:
        """Acquire workers (called once, when the build starts)."""
        ...

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on a worker and return its result."""
        ...

    async def close(self) -> None:
        """Release workers (called once, when the build ends)."""
        ...


class InlineExecutor:
    """Runs each task on the event loop's thread, one at a time: simple to debug."""

    slots = 1
    remote = False

    def __repr__(self) -> str:
        return "InlineExecutor()"

    async def start(self) -> None:
        """Nothing to start."""

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` right here."""
        return fn(*args)

    async def close(self) -> None:
        """Nothing to release."""


class ThreadExecutor:
    """Runs tasks on a pool of threads (default size: like ``ThreadPoolExecutor``)."""

    remote = False

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max_workers or min(32, (os.cpu_count() or 1) + 4)
        # Tasks queued ahead of the threads: a thread that finishes takes the next one at
        # once instead of waiting for the event loop's thread to get the GIL back.
        self.slots = 4 * self.max_workers
        self._pool: ThreadPoolExecutor | None = None

    def __repr__(self) -> str:
        return f"ThreadExecutor(max_workers={self.max_workers})"

    async def start(self) -> None:
        """Create the thread pool."""
        self._pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix="stardag")

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on a pool thread, in the caller's context (settings included)."""
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, lambda: context.run(fn, *args)
        )

    async def close(self) -> None:
        """Wait for the pool's threads to finish what they run (without holding up the
        event loop); what waits for a thread (a cancelled build's queue) does not start."""
        if self._pool is not None:
            await asyncio.to_thread(self._pool.shutdown, wait=True, cancel_futures=True)


class ProcessExecutor:
    """Runs tasks in a pool of worker processes (``spawn`` by default: safe with threads)."""

    remote = True

    def __init__(self, max_workers: int | None = None, start_method: str = "spawn") -> None:
        self.slots = max_workers or os.cpu_count() or 1
        self.start_method = start_method
        self._pool: ProcessPoolExecutor | None = None

    def __repr__(self) -> str:
        return f"ProcessExecutor(max_workers={self.slots}, start_method={self.start_method!r})"

    async def start(self) -> None:
        """Create the process pool (workers start on first use)."""
        context = multiprocessing.get_context(self.start_method)
        self._pool = ProcessPoolExecutor(self.slots, mp_context=context)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in a worker process."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def close(self) -> None:
        """Stop the worker processes once they finish what they run (without holding up the
        event loop); what waits for one (a cancelled build's queue) does not start."""
        if self._pool is not None:
            await asyncio.to_thread(self._pool.shutdown, wait=True, cancel_futures=True)


class DaskExecutor:
    """Runs tasks on a Dask distributed cluster (needs the ``dask`` extra).

    With an ``address`` it connects to a running scheduler; without one it starts a
    ``LocalCluster`` of ``n_workers`` single-threaded worker processes for the build.
    """

    remote = True

    def __init__(self, address: str | None = None, n_workers: int = 2) -> None:
        self.address = address
        self.n_workers = n_workers
        self.slots = n_workers
        # distributed's API is untyped: these are a Client and a LocalCluster.
        self._client: Any = None
        self._cluster: Any = None

    def __repr__(self) -> str:
        where = self.address or f"LocalCluster(n_workers={self.n_workers})"
        return f"DaskExecutor({where})"

    async def start(self) -> None:
        """Connect to the scheduler, or start a local cluster."""
        from distributed import Client, LocalCluster  # optional dependency, used only here

        if self.address is None:
            self._cluster = await LocalCluster(
                n_workers=self.n_workers,
                threads_per_worker=1,
                processes=True,
                asynchronous=True,
                dashboard_address=None,
                host="127.0.0.1",
            )
            self._client = await Client(self._cluster, asynchronous=True)
        else:
            self._client = await Client(self.address, asynchronous=True)
            threads_per_worker: dict[str, int] = await self._client.nthreads()
            self.slots = max(1, sum(threads_per_worker.values()))

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on a Dask worker."""
        for arg in args:
            if type(arg).__module__ == "__main__":
                raise StardagError(
                    f"{type(arg).__qualname__} is defined in the __main__ script, which Dask "
                    "workers cannot import: define it in a module and import it from there"
                )
        result: T = await self._client.submit(fn, *args, pure=False)
        return result

    async def close(self) -> None:
        """Disconnect, and stop the local cluster if this executor started one."""
        if self._client is not None:
            await self._client.close()
        if self._cluster is not None:
            await self._cluster.close()
