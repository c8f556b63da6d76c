"""The GraphQL registry: a build's reports, sent to a stardag registry through a durable outbox.

```python
registry = GraphQLRegistry("http://127.0.0.1:8000", workspace_id, credential=api_key)
sd.build(task, registry=registry)
```

The build only appends to the outbox (a SQLite file); a background thread sends what is
queued in batches (`startBuild`, `registerTasks`, `recordEvents`, `finishBuild`, all
idempotent) and removes it once the registry confirmed it. A registry that is down or slow
slows no build: the thread retries with backoff, and what is left when the process ends is
sent by the next registry opened on the same outbox. A message the registry refuses as
invalid is logged and dropped, so it cannot block the ones behind it.

It also holds build locks (`build(..., locks=True)`): see `stardag_core.registry_locks`.
"""

import atexit
import base64
import contextlib
import hashlib
import itertools
import json
import logging
import os
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stardag_core.assets import MarkdownRegistryAsset, RegistryAsset
from stardag_core.channel import Channel, Credential, RegistryRefused, RegistryUnavailable
from stardag_core.exceptions import RegistryError
from stardag_core.outbox import Message, Outbox
from stardag_core.profiles import stardag_home
from stardag_core.registry import (
    BuildOutcome,
    BuildRecord,
    FoundTask,
    LogLine,
    TaskEvent,
    TaskEventKind,
)
from stardag_core.registry_locks import GraphQLLocks
from stardag_core.tasks import Task, flatten_targets, flatten_tasks

logger = logging.getLogger("stardag.registry")

BATCH = 500
TASKS_PER_REQUEST = 250
"""Tasks registered in one request at most. A registry writes a request in one transaction,
and every other write waits for it: a thousand tasks held up the leases of a locked build for
some 70 ms, with every slot idle; a quarter of that lets them through in between."""
MAX_BACKOFF_SECONDS = 5.0
LINGER_SECONDS = 0.1
"""How long the sender lets reports gather after the first one, unless someone waits."""
EVENT_KINDS = {
    TaskEventKind.STARTED: "TASK_RUNNING",
    TaskEventKind.COMPLETED: "TASK_COMPLETED",
    TaskEventKind.SKIPPED: "TASK_COMPLETED",
    TaskEventKind.FAILED: "TASK_FAILED",
    TaskEventKind.CANCELLED: "TASK_CANCELLED",
}

START = """mutation($w: ID!, $k: UUID!, $c: String) {
  startBuild(workspaceId: $w, key: $k, commit: $c) { id }
}"""
REGISTER = """mutation($w: ID!, $t: [TaskInput!]!, $b: ID, $r: [String!]) {
  registerTasks(workspaceId: $w, tasks: $t, buildId: $b, rootTaskIds: $r) { registered }
}"""
RECORD = """mutation($w: ID!, $e: [EventInput!]!) {
  recordEvents(workspaceId: $w, events: $e) { recorded }
}"""
LOGS = """mutation($w: ID!, $t: String!, $l: [LogLineInput!]!, $b: ID) {
  appendLogs(workspaceId: $w, taskId: $t, lines: $l, buildId: $b) { appended }
}"""
ASSET = """mutation($w: ID!, $t: String!, $n: String!, $k: AssetKind!, $body: String!) {
  putAsset(workspaceId: $w, taskId: $t, name: $n, kind: $k, body: $body) { name }
}"""
FINISH = """mutation($b: ID!, $s: BuildStatus!) { finishBuild(buildId: $b, status: $s) { id } }"""


def default_outbox(url: str, workspace_id: str) -> Path:
    """One outbox file per registry and workspace, under the stardag home's `outbox/`."""
    digest = hashlib.sha256(f"{url}\n{workspace_id}".encode()).hexdigest()[:16]
    return stardag_home() / "outbox" / f"{digest}.db"


def build_global_id(key: str) -> str:
    """The registry's global id of the build started with `key` (a Relay id: `Build:<key>`)."""
    return base64.b64encode(f"Build:{key}".encode()).decode()


def git_commit() -> str | None:
    """The commit checked out in the working directory, if it is a git checkout."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=2, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def registration(task: Task, dependencies: Sequence[Task]) -> dict[str, Any]:
    """A task as `registerTasks` takes it: the payload its id hashes (nested tasks as their
    ids, so a task's size does not grow with its ancestry), output and direct dependencies."""
    cls = type(task)
    targets = flatten_targets(task.output())
    output_uri = getattr(targets[0], "uri", None) if targets else None
    return {
        "taskId": str(task.id),
        "name": cls.get_name(),
        "namespace": cls.get_namespace(),
        "version": cls.get_version(),
        "parameters": task.id_payload(),
        "outputUri": output_uri,
        "dependencies": [str(dependency.id) for dependency in dependencies],
    }


def requirements(task: Task) -> tuple[Task, ...]:
    """What `task` requires; nothing when its `requires()` raises (the build reports that
    failure: registering the task must not fail with it)."""
    try:
        return tuple(flatten_tasks(task.requires()))
    except Exception:
        return ()


class GraphQLRegistry:
    """Reports builds to the registry at `url`, in the workspace `workspace_id` (a global id),
    as `credential` (see `Credential`), and holds build locks there."""

    def __init__(
        self,
        url: str,
        workspace_id: str,
        *,
        credential: Credential = None,
        outbox: Path | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.workspace_id = workspace_id
        self._credential = credential
        self._outbox = Outbox(outbox or default_outbox(self.url, workspace_id))
        # The connection that build locks use, set up with the sender's, ahead of any build.
        self._lock_channel = Channel(self.url, credential)
        self._registered: dict[tuple[uuid.UUID, uuid.UUID], int] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        # Set once the sender sent all that was queued, or failed to reach the registry (then
        # `_unreachable` is set too, until a send succeeds).
        self._settled = threading.Event()
        self._unreachable = threading.Event()
        self._stopping = threading.Event()
        self._urgent = threading.Event()
        # Completions waiting for their task's registration to reach the registry, with
        # the payload each gets then (see `payload_once_registered`).
        self._awaiting: list[_Awaiting] = []
        self._event_ids = itertools.count()
        self._event_prefix = uuid.uuid4().hex
        self._thread = threading.Thread(target=self._send_forever, name="stardag-registry")
        self._thread.daemon = True
        self._thread.start()
        atexit.register(self.close)

    def __repr__(self) -> str:
        return f"GraphQLRegistry({self.url!r}, workspace={self.workspace_id!r})"

    # The engine's hooks: they only queue.

    def build_started(self, build: BuildRecord) -> None:
        """Queue the build's start."""
        self._put("start", {"key": str(build.id), "commit": git_commit()})

    def tasks_found(self, build: BuildRecord, found: Sequence[FoundTask]) -> None:
        """Queue the registration of the tasks the build found, with the dependencies its
        graph has for them (no `requires()` called again), and mark its roots among them."""
        root_ids = {root.id for root in build.roots}
        roots = [str(item.task.id) for item in found if item.task.id in root_ids]
        needs = {item.task.id: item.needs for item in found}
        self._register(build.id, [item.task for item in found], roots, needs)

    def task_event(self, event: TaskEvent) -> None:
        """Queue what happened to a task (registering it and its upstream first, once)."""
        self._register(event.build_id, [event.task])
        self._put("event", self._event_payload(event))

    def task_logs(self, build_id: uuid.UUID, task: Task, lines: Sequence[LogLine]) -> None:
        """Queue lines a task's run wrote."""
        self._register(build_id, [task])
        self._put(
            "logs",
            {
                "build": str(build_id),
                "taskId": str(task.id),
                "lines": [
                    {
                        "seq": line.seq,
                        "text": line.text,
                        "loggedAt": line.at.isoformat(),
                        "stream": line.stream,
                    }
                    for line in lines
                ],
            },
        )

    def task_assets(self, build_id: uuid.UUID, task: Task, assets: Sequence[RegistryAsset]) -> None:
        """Queue the assets a completed task published."""
        self._register(build_id, [task])
        for asset in assets:
            markdown = isinstance(asset, MarkdownRegistryAsset)
            self._put(
                "asset",
                {
                    "taskId": str(task.id),
                    "name": asset.name,
                    "kind": "MARKDOWN" if markdown else "JSON",
                    "body": asset.body if markdown else json.dumps(asset.body),
                },
            )

    def build_finished(self, build: BuildRecord, outcome: BuildOutcome, at: Any = None) -> None:
        """Queue the build's end."""
        self._put("finish", {"key": str(build.id), "status": outcome.name})

    def build_locks(self, build: BuildRecord, ttl: float) -> GraphQLLocks:
        """Build locks in this registry's workspace for `build`, leased for `ttl` seconds."""
        holder = f"{socket.gethostname()}:{os.getpid()}:{build.id}"
        return GraphQLLocks(self._lock_channel, self, holder, ttl)

    def payload_once_registered(self, event: TaskEvent) -> dict[str, Any] | Future[dict[str, Any]]:
        """`event` as `recordEvents` takes it, once the registry has its task's registration
        (sent through the outbox): now if it has, else a future the sender answers."""
        self._register(event.build_id, [event.task])
        key = event.build_id, event.task.id
        payload = self._event_payload(event)
        with self._lock:
            if self._is_delivered(key):
                return payload
            answer: Future[dict[str, Any]] = Future()
            self._awaiting.append(_Awaiting(key, answer, payload))
        self._urgent.set()
        self._wake.set()
        return answer

    def _is_delivered(self, key: tuple[uuid.UUID, uuid.UUID]) -> bool:
        """Whether the registration of `key` (build, task) was delivered; hold `_lock`."""
        ticket = self._registered[key]
        return ticket >= 0 and self._outbox.delivered(ticket)

    def _answer_awaiting(self) -> None:
        """Hand their payloads to the completions whose registrations were delivered."""
        with self._lock:
            ready = [waiting for waiting in self._awaiting if self._is_delivered(waiting.key)]
            self._awaiting = [waiting for waiting in self._awaiting if waiting not in ready]
        for waiting in ready:
            if waiting.answer.set_running_or_notify_cancel():  # False: its waiter gave up
                waiting.answer.set_result(waiting.payload)

    # Sending.

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued was sent (True) or `timeout` seconds passed (False)."""
        return self._drain(timeout, patient=True)

    def _drain(self, timeout: float, *, patient: bool) -> bool:
        """Wait until everything queued was sent (True), or `timeout` seconds passed, or,
        unless `patient`, the registry was found unreachable (False)."""
        deadline = time.monotonic() + timeout
        while len(self._outbox):
            if not patient and self._unreachable.is_set():
                return False
            self._settled.clear()
            self._urgent.set()
            self._wake.set()
            if not self._settled.wait(max(0.0, deadline - time.monotonic())):
                return False
        return True

    def pending(self) -> int:
        """How many messages wait in the outbox."""
        return len(self._outbox)

    def close(self, timeout: float = 5.0) -> None:
        """Send what can be sent within `timeout` seconds, then stop. A registry that cannot
        be reached is not waited for: what is left stays queued in the outbox, and the next
        sender on it (the next build that reports there) sends it."""
        if self._stopping.is_set():
            return
        self._drain(timeout, patient=False)
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout)
        if left := len(self._outbox):
            logger.warning(
                "%d report(s) for the registry at %s wait in %s: the next build that reports "
                "there sends them",
                left,
                self.url,
                self._outbox.path,
            )
        self._outbox.close()
        self._lock_channel.close()
        atexit.unregister(self.close)

    def _put(self, kind: str, payload: dict[str, Any]) -> int:
        seq = self._outbox.put(kind, payload)
        self._wake.set()
        return seq

    def _register(
        self,
        build_id: uuid.UUID,
        tasks: Sequence[Task],
        roots: Sequence[str] = (),
        needs: Mapping[uuid.UUID, tuple[Task, ...] | None] | None = None,
    ) -> None:
        """Queue the registration of `tasks` and of their upstream not yet registered,
        dependencies first, in requests of at most `TASKS_PER_REQUEST` tasks; the build's
        `roots` go with the last, once every task they name is registered."""
        payloads = self._unregistered(build_id, tasks, needs or {})
        end = max(len(payloads), 1 if roots else 0)
        for start in range(0, end, TASKS_PER_REQUEST):
            chunk = payloads[start : start + TASKS_PER_REQUEST]
            last = start + TASKS_PER_REQUEST >= end
            message = {"build": str(build_id), "tasks": chunk, "roots": list(roots) if last else []}
            seq = self._put("register", message)
            with self._lock:
                for payload in chunk:
                    self._registered[build_id, uuid.UUID(payload["taskId"])] = seq
        if payloads and self._awaiting:
            # The sender may have delivered these before their seqs were known here, and
            # passed over a completion waiting for one of them.
            self._answer_awaiting()

    def _unregistered(
        self,
        build_id: uuid.UUID,
        tasks: Sequence[Task],
        needs: Mapping[uuid.UUID, tuple[Task, ...] | None],
    ) -> list[dict[str, Any]]:
        """Registrations of `tasks` and of their upstream not yet registered in the build,
        dependencies first: a task's dependencies are those in `needs`, or else what its
        `requires()` gives."""
        ordered: list[dict[str, Any]] = []
        # Depth first, iteratively (a chain of tasks can be deeper than Python's stack): a
        # task is visited, its dependencies pushed above it, and it is registered when it
        # surfaces again with them done.
        stack: list[tuple[Task, tuple[Task, ...] | None]] = [(task, None) for task in tasks]
        while stack:
            task, dependencies = stack.pop()
            if dependencies is not None:
                ordered.append(registration(task, dependencies))
                continue
            with self._lock:
                if (build_id, task.id) in self._registered:
                    continue
                self._registered[build_id, task.id] = -1  # claimed; its seq is known once queued
            known = needs.get(task.id)
            dependencies = requirements(task) if known is None else known
            stack.append((task, dependencies))
            stack.extend((dependency, None) for dependency in dependencies)
        return ordered

    def _send_forever(self) -> None:
        channel = Channel(self.url, self._credential)
        backoff = 0.0
        try:
            # Set both connections up while nothing waits for them: a build's first lock
            # request is on the way to its first tasks. A connection that fails to set up
            # fails again at its first request, which says why.
            for each in (channel, self._lock_channel):
                with contextlib.suppress(RegistryError):
                    each.open()
            while not self._stopping.is_set():
                queued = self._outbox.peek(BATCH)
                batch = _next_batch(queued)
                if not batch:
                    self._settled.set()
                    self._wake.wait(0.5)
                    self._wake.clear()
                    # A burst of reports gathers into a few requests, unless someone waits.
                    self._urgent.wait(LINGER_SECONDS)
                    self._urgent.clear()
                    continue
                if self._send(channel, batch):
                    self._unreachable.clear()
                    self._outbox.remove(batch)
                    self._answer_awaiting()
                    backoff = 0.0
                    if len(batch) == len(queued) < BATCH:  # caught up: let reports gather
                        self._urgent.wait(LINGER_SECONDS)
                        self._urgent.clear()
                else:
                    self._unreachable.set()
                    self._settled.set()
                    # New reports do not cut the wait short: only stopping does.
                    backoff = min(MAX_BACKOFF_SECONDS, max(0.1, backoff * 2))
                    self._stopping.wait(backoff)
        finally:
            channel.close()

    def _send(self, channel: Channel, batch: list[Message]) -> bool:
        """Send one batch: True once it is done with (sent, or refused for good)."""
        document, variables = self._request(batch)
        try:
            channel.execute(document, variables)
        except RegistryUnavailable as error:
            logger.debug("%s; retrying", error)
            return False
        except RegistryRefused as error:
            logger.error("%s; the report is dropped", error)
        return True

    def _request(self, batch: list[Message]) -> tuple[str, dict[str, Any]]:
        first = batch[0]
        w = self.workspace_id
        if first.kind == "start":
            return START, {"w": w, "k": first.payload["key"], "c": first.payload["commit"]}
        if first.kind == "finish":
            return FINISH, {
                "b": build_global_id(first.payload["key"]),
                "s": first.payload["status"],
            }
        if first.kind == "register":
            tasks = {t["taskId"]: t for m in batch for t in m.payload["tasks"]}
            roots = sorted({root for m in batch for root in m.payload["roots"]})
            build = build_global_id(first.payload["build"])
            return REGISTER, {"w": w, "t": list(tasks.values()), "b": build, "r": roots}
        if first.kind == "logs":
            build = build_global_id(first.payload["build"])
            return LOGS, {
                "w": w,
                "t": first.payload["taskId"],
                "l": first.payload["lines"],
                "b": build,
            }
        if first.kind == "asset":
            asset = first.payload
            return ASSET, {
                "w": w,
                "t": asset["taskId"],
                "n": asset["name"],
                "k": asset["kind"],
                "body": asset["body"],
            }
        return RECORD, {"w": w, "e": [message.payload for message in batch]}

    def _event_payload(self, event: TaskEvent) -> dict[str, Any]:
        """A task event as `recordEvents` takes it, with a fresh idempotent event id (this
        registry's random prefix and a count: cheaper than a random id for each event)."""
        return event_payload(event, f"{self._event_prefix}-{next(self._event_ids)}")


@dataclass(eq=False)
class _Awaiting:
    """A completion waiting for its task's registration: the (build, task) key, the future
    it awaits, and the payload that future gets."""

    key: tuple[uuid.UUID, uuid.UUID]
    answer: Future[dict[str, Any]]
    payload: dict[str, Any]


def event_payload(event: TaskEvent, event_id: str) -> dict[str, Any]:
    """A task event as `recordEvents` takes it, with the idempotent id `event_id`."""
    payload: dict[str, Any] = {"skipped": True} if event.kind is TaskEventKind.SKIPPED else {}
    if event.error is not None:
        payload["error"] = event.error
    return {
        "eventId": event_id,
        "kind": EVENT_KINDS[event.kind],
        "occurredAt": event.at.isoformat(),
        "taskId": str(event.task.id),
        "buildId": build_global_id(str(event.build_id)),
        "payload": payload,
    }


def _next_batch(messages: list[Message]) -> list[Message]:
    """The first message, with the ones after it that can go in the same request: events
    together, and registrations of the same build together."""
    if not messages:
        return []
    first, batch = messages[0], [messages[0]]
    if first.kind not in ("event", "register"):
        return batch
    tasks = len(first.payload.get("tasks", ()))
    for message in messages[1:]:
        same_build = message.payload.get("build") == first.payload.get("build")
        if message.kind != first.kind or (first.kind == "register" and not same_build):
            break
        tasks += len(message.payload.get("tasks", ()))
        if tasks > TASKS_PER_REQUEST:
            break
        batch.append(message)
    return batch
