"""Build locks held in a registry: each task built once across every worker.

A worker takes a lease on a task (`acquireLock`, key `task:<id>`) before running it; a
keeper thread renews every lease it holds every third of the lease's time to live, and marks
a lease lost when the registry no longer renews it. The worker records the task's
completion with `recordEventsUnderLock`, which records it and frees the lock only while the
worker's fencing token is the live one: a worker that stalled past its lease (paused,
partitioned) and was taken over records nothing. A worker that dies releases nothing; its
lease lapses after its time to live and another worker takes the task over.

The calls are coroutines on the scheduler's event loop, where they gather: what is waiting
goes as one request (from a worker thread, so the loop runs on), each kind of call as one
list (`acquireLocks`, `releaseLocks`, `recordEventsUnderLocks`), each list one statement on
the registry. A busy build makes a few large requests rather than many small ones, and
waits for hundreds of answers at once at the cost of a future each. Completions ride along
with the leases asked for, but leases never wait behind a request of completions alone.
The keeper renews from a thread of its own, so a loop busy running a task (the inline
executor) does not let its leases lapse. While the registry is unreachable, taking a lease
waits and retries; recording a completion retries for as long as the lease lasts.
"""

import asyncio
import logging
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

from stardag_core.channel import Channel, RegistryRefused, RegistryUnavailable
from stardag_core.registry import Lease, TaskEvent
from stardag_core.tasks import Task

logger = logging.getLogger("stardag.locks")

MAX_BACKOFF_SECONDS = 2.0
CALLS_PER_REQUEST = 500
"""Lock calls sent in one request at most."""
REGISTRATION_CHECK_SECONDS = 1.0
"""How long a completion waits for its task's registration before checking its lease again."""
GATHER_SECONDS = 0.01
"""How long the dispatcher lets calls gather after the first: a request costs the registry
far more than a call in it, so a little waiting buys throughput."""

# Each kind of call: the argument that takes the batch's calls, with its type, and the field.
# The registry runs a mutation's fields in order, and a request's order is this one: locks
# are freed before any is taken, so that a lease given back and asked for again in the same
# request (the same holder, so the same fencing token) ends up held, not freed.
OPERATIONS = {
    "complete": (
        "$complete: [LockedEventsInput!]!",
        "complete: recordEventsUnderLocks(workspaceId: $w, holder: $h, completions: $complete)",
    ),
    "release": (
        "$release: [LeaseInput!]!",
        "release: releaseLocks(workspaceId: $w, leases: $release, holder: $h)",
    ),
    "renew": (
        "$renew: [LeaseInput!]!",
        "renew: renewLocks(workspaceId: $w, leases: $renew, holder: $h, ttlSeconds: $ttl)",
    ),
    "acquire": (
        "$acquire: [String!]!",
        "acquire: acquireLocks(workspaceId: $w, keys: $acquire, holder: $h, ttlSeconds: $ttl) "
        "{ lease { fencingToken } }",
    ),
}


class Reporter(Protocol):
    """The registry client the locks belong to: its workspace, and its outbox's promise
    that a task is registered before its completion is recorded."""

    workspace_id: str

    def payload_once_registered(self, event: TaskEvent) -> dict[str, Any] | Future[dict[str, Any]]:
        """`event` for `recordEvents`: now if its task is registered, else a future of it."""
        ...


def lock_key(task: Task) -> str:
    """The lock that guards building `task`."""
    return f"task:{task.id}"


@dataclass
class _Call:
    kind: str
    argument: Any
    answer: "asyncio.Future[Any]"


class GraphQLLocks:
    """Leases for one build, held by `holder`, each `ttl` seconds long and renewed."""

    def __init__(self, channel: Channel, reporter: Reporter, holder: str, ttl: float) -> None:
        self.holder = holder
        self.ttl = ttl
        self._channel = channel
        self._reporter = reporter
        self._held: dict[str, Lease] = {}
        self._completing: set[str] = set()
        self._guard = threading.Lock()
        # Calls waiting to be sent: those that take or give back leases, and completions.
        self._lease_calls: list[_Call] = []
        self._completions: list[_Call] = []
        self._lease_sender: asyncio.Task[None] | None = None
        self._completion_sender: asyncio.Task[None] | None = None
        self._stop = threading.Event()
        self._keeper = threading.Thread(target=self._renew_forever, name="stardag-leases")
        self._keeper.daemon = True
        self._keeper.start()

    def __repr__(self) -> str:
        return f"GraphQLLocks(holder={self.holder!r}, ttl={self.ttl})"

    async def acquire(self, task: Task) -> Lease | None:
        """A lease on `task`, or None while another worker holds it; waits out an
        unreachable registry."""
        key = lock_key(task)
        backoff = 0.0
        while True:
            asked = time.monotonic()
            try:
                granted = (await self._call("acquire", key))["lease"]
                break
            except RegistryUnavailable as error:
                backoff = min(MAX_BACKOFF_SECONDS, max(0.05, backoff * 2))
                logger.warning("cannot take the lock %s yet (%s); retrying", key, error)
                await asyncio.sleep(backoff)
        if granted is None:
            return None
        lease = Lease(key, self.holder, granted["fencingToken"], asked + self.ttl)
        with self._guard:
            self._held[key] = lease
        return lease

    async def release(self, lease: Lease) -> None:
        """Give the lease up; if the registry cannot be told, the lease lapses on its own."""
        self._forget(lease)
        try:
            await self._call("release", {"key": lease.key, "fencingToken": lease.fencing_token})
        except (RegistryUnavailable, RegistryRefused) as error:
            logger.warning("could not release the lock %s (%s); it lapses", lease.key, error)

    async def complete(self, lease: Lease, event: TaskEvent) -> bool:
        """Record `event` and free the lock while the lease is live; False once it lapsed."""
        with self._guard:
            self._completing.add(lease.key)

        # The registry decides whether the lease still holds (it checks the fencing token
        # and the expiry in the same transaction as the record), so this side stops trying
        # only once the lease is known lost or a whole ttl past its last known deadline: a
        # busy registry answering a renewal late must not cost a task its completion.
        def hopeful() -> bool:
            return not lease.lost and time.monotonic() < lease.deadline + self.ttl

        try:
            # The task's registration goes first, through the outbox, which a busy registry
            # can hold up for a while.
            payload = self._reporter.payload_once_registered(event)
            if isinstance(payload, Future):
                registered = asyncio.wrap_future(payload)
                while not registered.done() and hopeful():
                    await asyncio.wait([registered], timeout=REGISTRATION_CHECK_SECONDS)
                if not registered.done():
                    registered.cancel()
                    return False
                payload = registered.result()
            # The same event id on every try: a try whose answer was lost counts once.
            completion = {
                "key": lease.key,
                "fencingToken": lease.fencing_token,
                "events": [payload],
            }
            while hopeful():
                try:
                    return bool(await self._call("complete", completion))
                except RegistryUnavailable as error:
                    logger.warning("cannot record %s yet (%s); retrying", lease.key, error)
                    await asyncio.sleep(min(MAX_BACKOFF_SECONDS, self.ttl / 4))
            return False
        finally:
            self._forget(lease)
            with self._guard:
                self._completing.discard(lease.key)

    def close(self) -> None:
        """Stop renewing; leases still held lapse on their own. The channel stays open: it
        is the registry's, for its next build."""
        self._stop.set()
        self._keeper.join()
        for sender in (self._lease_sender, self._completion_sender):
            if sender is not None:
                sender.cancel()

    async def _call(self, kind: str, argument: Any) -> Any:
        """Hand a call to a sender and await its answer."""
        call = _Call(kind, argument, asyncio.get_running_loop().create_future())
        (self._completions if kind == "complete" else self._lease_calls).append(call)
        self._dispatch()
        return await call.answer

    def _dispatch(self) -> None:
        """Start a sender for the calls waiting, if none of its kind is under way.

        Requests that take or give back leases go one at a time, in order, with the
        completions waiting. Completions alone go only while no such request is under way,
        and one never holds leases up: a lease is on the path to a task's run, a completion
        is recorded aside. A completion frees a lock this worker never takes again, so it
        may be recorded while leases are taken in another request."""
        if self._lease_calls and self._lease_sender is None:
            self._lease_sender = asyncio.create_task(self._send_leases())
        elif self._completions and self._lease_sender is None and self._completion_sender is None:
            self._completion_sender = asyncio.create_task(self._send_completions())

    async def _send_leases(self) -> None:
        """Send the lease calls waiting, with the completions waiting, until none is left:
        a call made while a request is on its way goes with the next one at once; the first
        call waits a little for others to join it."""
        try:
            await asyncio.sleep(GATHER_SECONDS)
            while self._lease_calls:
                batch = _take(self._lease_calls, CALLS_PER_REQUEST)
                batch += _take(self._completions, CALLS_PER_REQUEST - len(batch))
                await self._send(batch)
        finally:
            self._lease_sender = None
            self._dispatch()

    async def _send_completions(self) -> None:
        """Send completions alone, while no request of leases is under way to take them."""
        try:
            await asyncio.sleep(GATHER_SECONDS)
            while self._completions and self._lease_sender is None:
                await self._send(_take(self._completions, CALLS_PER_REQUEST))
        finally:
            self._completion_sender = None
            self._dispatch()

    async def _send(self, batch: list[_Call]) -> None:
        """Send a batch of calls as one request and answer each (but those whose caller
        stopped waiting: a cancelled build)."""
        kinds: dict[str, list[_Call]] = {}
        for call in batch:
            if not call.answer.done():
                kinds.setdefault(call.kind, []).append(call)
        if not kinds:
            return
        arguments = {kind: [call.argument for call in calls] for kind, calls in kinds.items()}
        try:
            data = await asyncio.to_thread(self._execute, arguments)
        except (RegistryUnavailable, RegistryRefused) as error:
            for calls in kinds.values():
                for call in calls:
                    if not call.answer.done():
                        call.answer.set_exception(error)
            return
        for kind, calls in kinds.items():
            for call, answer in zip(calls, data[kind], strict=True):
                if not call.answer.done():
                    call.answer.set_result(answer)

    def _execute(self, arguments: dict[str, list[Any]]) -> dict[str, Any]:
        """One request with a list of calls of each kind in `arguments`; blocks."""
        variables: dict[str, Any] = {
            "w": self._reporter.workspace_id,
            "h": self.holder,
            **arguments,
        }
        if arguments.keys() & {"acquire", "renew"}:
            variables["ttl"] = self.ttl
        return self._channel.execute(document(frozenset(arguments)), variables)

    def _forget(self, lease: Lease) -> bool:
        """Stop renewing `lease`; False if it was no longer held (completed or released)."""
        with self._guard:
            if self._held.get(lease.key) is not lease:
                return False
            del self._held[lease.key]
            return True

    def _renew_forever(self) -> None:
        # Rounds start a third of the ttl apart however long each takes to be answered: a
        # registry slow to answer must not also space the renewals out.
        period = self.ttl / 3
        asked = time.monotonic()
        while not self._stop.wait(max(0.0, asked + period - time.monotonic())):
            with self._guard:
                leases = list(self._held.values())
            asked = time.monotonic()
            for start in range(0, len(leases), CALLS_PER_REQUEST):
                self._renew(leases[start : start + CALLS_PER_REQUEST], asked)

    def _renew(self, leases: list[Lease], asked: float) -> None:
        pairs = [{"key": lease.key, "fencingToken": lease.fencing_token} for lease in leases]
        try:
            renewed = self._execute({"renew": pairs})["renew"]
        except (RegistryUnavailable, RegistryRefused) as error:
            logger.warning("could not renew %d lock(s) (%s)", len(leases), error)
            return
        for lease, live in zip(leases, renewed, strict=True):
            if live:
                lease.deadline = asked + self.ttl
                continue
            with self._guard:
                if lease.key in self._completing:
                    continue  # completed (and freed) while the renewal was on its way
            if self._forget(lease):
                logger.warning("the lock %s lapsed: another worker may take it over", lease.key)
                lease.lost = True


def _take(calls: list[_Call], count: int) -> list[_Call]:
    """Remove the first `count` calls from `calls` and return them."""
    taken = calls[:count]
    del calls[:count]
    return taken


@cache
def document(kinds: frozenset[str]) -> str:
    """The mutation that sends the calls of `kinds` (each kind a list, one field)."""
    declarations = ["$w: ID!", "$h: String!"]
    if kinds & {"acquire", "renew"}:
        declarations.append("$ttl: Float!")
    chosen = [kind for kind in OPERATIONS if kind in kinds]
    declarations += [OPERATIONS[kind][0] for kind in chosen]
    fields = "\n".join(f"  {OPERATIONS[kind][1]}" for kind in chosen)
    return f"mutation({', '.join(declarations)}) {{\n{fields}\n}}"
