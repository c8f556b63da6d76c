"""Registry benchmarks: the GraphQL API over HTTP on loopback, on PostgreSQL and on SQLite.

    uv run --locked --all-extras python bench/registry.py            # full sizes (about 10 minutes)
    uv run --locked --all-extras python bench/registry.py --quick    # small sizes, under a minute
    uv run --locked --all-extras python bench/registry.py --backends sqlite --parts lineage

Each part (registration, lineage, task list) gets a fresh database: a new database in a
throwaway PostgreSQL 15 cluster that the script starts, or a new SQLite file. The registry
(`create_app(Settings(database_url=...))`) is served by uvicorn, one worker, in a subprocess;
the client (`http.client` on keep-alive connections) runs in this process. Large data sets
(the lineage graph, the million-task list) are bulk-loaded straight into the tables, then read
through the API. Latencies are medians over repetitions; a missed target comes with its SQL
statements, their times, and the database's plan for the slowest read (EXPLAIN ANALYZE on
PostgreSQL, EXPLAIN QUERY PLAN on SQLite), taken by running the same operation in this process.
"""

import argparse
import asyncio
import base64
import contextlib
import cProfile
import http.client
import io
import json
import os
import pstats
import random
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import uvicorn
from sqlalchemy import event
from sqlalchemy.engine import make_url

import stardag_graphql
from stardag_graphql.app import create_app
from stardag_graphql.context import Context
from stardag_graphql.database import (
    create_engine,
    create_read_sessionmaker,
    create_sessionmaker,
)
from stardag_graphql.migrations import upgrade
from stardag_graphql.notify import Notifier
from stardag_graphql.schema import schema
from stardag_graphql.settings import Settings
from stardag_graphql.store.tenancy import ensure_local_identity, local_identity

PGBIN = Path(os.environ.get("PGBIN", "/usr/lib/postgresql/15/bin"))
BACKENDS = ("postgresql", "sqlite")
PARTS = ("registration", "lineage", "tasks")


@dataclass(frozen=True)
class Sizes:
    """How much each part does."""

    batch: int = 1000  # tasks per registerTasks request
    batches: int = 20  # timed batches
    singles: int = 400  # one-task requests per round
    rounds: int = 5  # rounds of one-task requests
    clients: int = 4  # concurrent clients in the concurrent rounds
    layers: int = 100  # the lineage graph: layers x width tasks
    width: int = 1000
    table: int = 1_000_000  # tasks in the task-list workspace
    repeats: int = 10  # samples per read query
    profiles: bool = True  # profile each missed target in process


FULL = Sizes()
QUICK = Sizes(
    batch=500,
    batches=3,
    singles=20,
    layers=12,
    width=250,
    table=50_000,
    repeats=5,
    profiles=False,
)


@dataclass(frozen=True)
class Target:
    """A figure to reach: at least `bound` when `higher_is_better`, else below it."""

    bound: float
    higher_is_better: bool

    def ratio(self, value: float) -> float:
        """The measured value as a multiple of the bound."""
        return value / self.bound

    def met(self, value: float) -> bool:
        """Whether `value` reaches the target."""
        return value >= self.bound if self.higher_is_better else value < self.bound

    def __str__(self) -> str:
        return f"{'≥' if self.higher_is_better else '<'} {_number(self.bound)}"


BATCH_TARGET = Target(5000, higher_is_better=True)  # tasks/s
SINGLE_TARGET = Target(500, higher_is_better=True)  # requests/s
SINGLE_P99_TARGET = Target(100, higher_is_better=False)  # ms
LINEAGE_TARGET = Target(20, higher_is_better=False)  # ms, depth 5
PAGE_TARGET = Target(100, higher_is_better=False)  # ms


@dataclass
class Result:
    """One line of the results table."""

    backend: str
    benchmark: str
    value: float
    unit: str
    spread: str = ""
    target: Target | None = None

    @property
    def verdict(self) -> str:
        """`met`, `missed`, or empty without a target."""
        if self.target is None:
            return ""
        return "met" if self.target.met(self.value) else "**missed**"


@dataclass
class Report:
    """The results of a run, and the evidence for each missed target."""

    results: list[Result] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)

    def add(self, result: Result) -> Result:
        """Record `result` and show it at once on stderr."""
        self.results.append(result)
        shown = f"{_number(result.value)} {result.unit}"
        print(
            f"  {result.backend:10s} {result.benchmark:58s} {shown:>14s} {result.spread}",
            file=sys.stderr,
            flush=True,
        )
        return result

    def markdown(self) -> str:
        """The results table, the notes and the evidence, as markdown."""
        lines = [
            "| backend | benchmark | median | spread | target | ratio to target | verdict |",
            "|---|---|---:|---|---|---:|---|",
        ]
        for r in self.results:
            ratio = f"{r.target.ratio(r.value):.2f}" if r.target else ""
            target = f"{r.target} {r.unit}" if r.target else ""
            lines.append(
                f"| {r.backend} | {r.benchmark} | {_number(r.value)} {r.unit} | {r.spread} "
                f"| {target} | {ratio} | {r.verdict} |"
            )
        lines += ["", *(f"- {note}" for note in self.notes)]
        if self.evidence:
            lines += ["", "## Where the time goes", "", *self.evidence]
        return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, under a minute")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="postgresql,sqlite")
    parser.add_argument("--parts", default=",".join(PARTS), help=",".join(PARTS))
    parser.add_argument("--serve", nargs=2, metavar=("URL", "PORT"), help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.serve:
        serve(options.serve[0], int(options.serve[1]))
        return
    sizes = QUICK if options.quick else FULL
    backends = [b for b in options.backends.split(",") if b]
    parts = [p for p in options.parts.split(",") if p]
    if unknown := (set(backends) - set(BACKENDS)) | (set(parts) - set(PARTS)):
        parser.error(f"unknown backends or parts: {', '.join(sorted(unknown))}")
    report = Report()
    report.notes.append(
        f"sizes: batches of {sizes.batch:,} tasks (2 dependencies each), "
        f"{sizes.rounds} rounds of {sizes.singles} one-task requests, "
        f"{sizes.clients} concurrent clients, lineage graph of {sizes.layers * sizes.width:,} "
        f"tasks ({sizes.layers} layers), task list of {sizes.table:,} tasks"
    )
    report.notes.append(f"registry code measured: {_revision()}")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="stardag-registry-bench-") as scratch:
        for backend in backends:
            if backend == "postgresql" and not (PGBIN / "initdb").exists():
                report.notes.append(f"postgresql skipped: no initdb in {PGBIN} (set PGBIN)")
                continue
            load = os.getloadavg()[0]
            with databases(backend, Path(scratch)) as fresh:
                for part in parts:
                    PART_RUNNERS[part](backend, fresh, sizes, report)
            report.notes.append(
                f"{backend}: load average {load:.1f} before, {os.getloadavg()[0]:.1f} after"
            )
    report.notes.append(f"whole run: {time.perf_counter() - started:.0f} s")
    print(report.markdown())


# -- the parts ------------------------------------------------------------------------------

REGISTER = """
mutation Register($ws: ID!, $tasks: [TaskInput!]!) {
  registerTasks(workspaceId: $ws, tasks: $tasks) { registered }
}"""


def registration(backend: str, fresh: Callable[[str], str], sizes: Sizes, report: Report) -> None:
    """Batched and one-task registrations, sequential and concurrent."""
    url = fresh("registration")
    with serving(url) as base_url, contextlib.ExitStack() as stack:
        clients = [stack.enter_context(Client(base_url)) for _ in range(sizes.clients)]
        client = clients[0]
        ws = client.workspace_id()
        floor = [client.timed("{ __typename }")[1] for _ in range(200)]
        report.add(
            Result(
                backend,
                "`{ __typename }` round trip (HTTP + GraphQL floor)",
                _ms(floor),
                "ms",
                _p99(floor),
            )
        )
        tasks = TaskMaker(random.Random(1))
        client(REGISTER, ws=ws, tasks=tasks.batch(sizes.batch))  # warm-up
        seconds = [
            client.timed(REGISTER, ws=ws, tasks=tasks.batch(sizes.batch))[1]
            for _ in range(sizes.batches)
        ]
        per_second = [sizes.batch / s for s in seconds]
        batched = report.add(
            Result(
                backend,
                f"registerTasks, batches of {sizes.batch:,} (2 deps each)",
                statistics.median(per_second),
                "tasks/s",
                f"{min(per_second):,.0f} to {max(per_second):,.0f} over {sizes.batches} batches",
                BATCH_TARGET,
            )
        )
        missed = _missed(batched)
        if backend == "postgresql":
            # Autovacuum analyzes the tables within its one-minute naptime of the batches. Until
            # then the server's cached generic plans, made while the tables were small, find a
            # task's dependencies by scanning the whole workspace (one-task p50 7 ms, not 2.5).
            analyze(url)
        for n in (1, sizes.clients):
            missed |= _singles(backend, clients[:n], ws, tasks, sizes, report)
        if missed and sizes.profiles:
            report.evidence.append(
                profile(
                    url,
                    backend,
                    "one-task registerTasks",
                    REGISTER,
                    lambda: {"ws": ws, "tasks": [tasks.one()]},
                )
            )
            report.evidence.append(
                profile(
                    url,
                    backend,
                    batched.benchmark,
                    REGISTER,
                    lambda: {"ws": ws, "tasks": tasks.batch(sizes.batch)},
                )
            )


def _singles(
    backend: str,
    clients: list["Client"],
    ws: str,
    tasks: "TaskMaker",
    sizes: Sizes,
    report: Report,
) -> bool:
    """Rounds of one-task registrations shared by `clients`; whether a target was missed."""
    rates, p50s, p99s, cpu = [], [], [], []
    clients[0](REGISTER, ws=ws, tasks=[tasks.one()])  # warm-up
    for _ in range(sizes.rounds):
        # Each task needs tasks registered before the round: the clients race each other.
        registered = len(tasks.known)
        payloads = [[tasks.one(registered)] for _ in range(sizes.singles)]
        started, cpu_started = time.perf_counter(), time.process_time()
        latencies = concurrently(clients, ws, payloads)
        wall = time.perf_counter() - started
        cpu.append((time.process_time() - cpu_started) / sizes.singles)
        rates.append(sizes.singles / wall)
        p50s.append(_quantile(latencies, 50))
        p99s.append(_quantile(latencies, 99))
    label = "sequential" if len(clients) == 1 else f"{len(clients)} concurrent clients"
    single = report.add(
        Result(
            backend,
            f"one-task registerTasks, {label}",
            statistics.median(rates),
            "req/s",
            f"p50 {_number(statistics.median(p50s))} ms",
            SINGLE_TARGET,
        )
    )
    p99 = report.add(
        Result(
            backend,
            f"one-task registerTasks, {label}: p99 latency",
            statistics.median(p99s),
            "ms",
            f"over {sizes.rounds} rounds",
            SINGLE_P99_TARGET,
        )
    )
    if len(clients) == 1:
        report.notes.append(
            f"{backend}: the client (http.client, JSON, in this process) spends "
            f"{statistics.median(cpu) * 1e6:,.0f} µs of CPU per one-task request"
        )
    return _missed(single) or _missed(p99)


LINEAGE = """
query Lineage($ws: ID!, $task: String!, $depth: Int, $nodes: Int!) {
  workspace(id: $ws) {
    task(taskId: $task) {
      upstream(maxDepth: $depth, maxNodes: $nodes) {
        __typename
        ... on Lineage { nodes { taskId name status depth } edges { upstream downstream } }
        ... on TruncatedLineage {
          nodes { taskId name status depth } edges { upstream downstream } maxNodes
        }
      }
    }
  }
}"""


def lineage(backend: str, fresh: Callable[[str], str], sizes: Sizes, report: Report) -> None:
    """Upstream lineage of top-layer tasks in a layered graph: depth 5 and the full closure."""
    url = fresh("lineage")
    n = sizes.layers * sizes.width
    with serving(url) as base_url, Client(base_url) as client:
        ws = client.workspace_id()
        graph = LayeredGraph(sizes.layers, sizes.width, random.Random(2))
        started = time.perf_counter()
        bulk_load(url, client.workspace_pk(ws), graph.tasks(), graph.edges())
        report.notes.append(
            f"{backend}: lineage graph of {n:,} tasks and {graph.edge_count:,} edges loaded in "
            f"{time.perf_counter() - started:.1f} s"
        )
        roots = graph.top_layer()
        for depth, nodes in ((5, 1000), (None, 1000), (None, 10_000)):
            runs = []
            for i in range(sizes.repeats + 1):
                data, seconds = client.timed(
                    LINEAGE, ws=ws, task=roots[i % len(roots)], depth=depth, nodes=nodes
                )
                runs.append((seconds, data["workspace"]["task"]["upstream"]))
                # A closure can take many seconds: stop after 5 samples or a two-minute budget.
                if depth is None and len(runs) > 1 and (len(runs) > 5 or _total(runs) > 120):
                    break
            # The first run warms up, unless it took so long that it is a sample itself.
            samples = [s for s, _ in (runs if runs[0][0] > 10 else runs[1:])]
            answer = runs[-1][1]
            shape = (
                f"{len(answer['nodes']):,} nodes, {len(answer['edges']):,} edges"
                f"{', truncated' if answer['__typename'] == 'TruncatedLineage' else ''}"
            )
            label = (
                f"upstream, maxDepth {depth}" if depth else "upstream, full closure"
            ) + f", maxNodes {nodes:,} ({n:,}-task graph)"
            result = report.add(
                Result(
                    backend,
                    label,
                    _ms(samples),
                    "ms",
                    f"{shape}; {len(samples)} runs, max {_number(max(samples) * 1e3)}",
                    LINEAGE_TARGET if depth == 5 else None,
                )
            )
            if sizes.profiles and (_missed(result) or (depth is None and nodes == 10_000)):
                variables = {"ws": ws, "task": roots[0], "depth": depth, "nodes": nodes}
                report.evidence.append(
                    profile(url, backend, label, LINEAGE, _always(variables), warm_up=depth == 5)
                )


PAGE = """
query Page($ws: ID!, $filter: TaskFilter) {
  workspace(id: $ws) {
    tasks(filter: $filter, first: 20) {
      edges { cursor node { id taskId namespace name status parameters createdAt } }
      pageInfo { hasNextPage endCursor }
    }
  }
}"""


def task_list(backend: str, fresh: Callable[[str], str], sizes: Sizes, report: Report) -> None:
    """First pages of a workspace holding `sizes.table` tasks, plain and filtered."""
    url = fresh("tasks")
    with serving(url) as base_url, Client(base_url) as client:
        ws = client.workspace_id()
        table = TaskTable(sizes.table, random.Random(3))
        started = time.perf_counter()
        bulk_load(url, client.workspace_pk(ws), table.tasks(), [])
        report.notes.append(
            f"{backend}: {sizes.table:,} tasks loaded in {time.perf_counter() - started:.1f} s"
            + (
                " (then VACUUM ANALYZE, as autovacuum would)"
                if backend == "postgresql"
                else " (no ANALYZE: the registry never runs it on SQLite)"
            )
        )
        rare_seed = table.rare_seed
        filters: list[tuple[str, dict[str, Any] | None]] = [
            ("newest first, no filter", None),
            (
                "namespace + 2 names + 2 statuses",
                {
                    "namespace": "training",
                    "names": ["fit", "tune"],
                    "statuses": ["FAILED", "CANCELLED"],
                },
            ),
            (
                "namespace + name + parameter `model.depth`",
                {
                    "namespace": "training",
                    "names": ["fit"],
                    "parameters": [{"path": "model.depth", "equals": 7}],
                },
            ),
            (
                f"parameter `model.kind` only ({table.kinds['mlp'] / sizes.table:.0%} match)",
                {"parameters": [{"path": "model.kind", "equals": "mlp"}]},
            ),
            (
                "parameter `seed` only (1 match)",
                {"parameters": [{"path": "seed", "equals": rare_seed}]},
            ),
        ]
        for label, task_filter in filters:
            runs = [client.timed(PAGE, ws=ws, filter=task_filter) for _ in range(sizes.repeats + 1)]
            samples = [s for _, s in runs[1:]]
            shown = len(runs[-1][0]["workspace"]["tasks"]["edges"])
            benchmark = f"first page of 20, {label} ({sizes.table:,} tasks)"
            result = report.add(
                Result(
                    backend,
                    benchmark,
                    _ms(samples),
                    "ms",
                    f"{shown} rows; max {_number(max(samples) * 1e3)}",
                    PAGE_TARGET,
                )
            )
            if sizes.profiles and _missed(result):
                variables = {"ws": ws, "filter": task_filter}
                report.evidence.append(profile(url, backend, benchmark, PAGE, _always(variables)))


PART_RUNNERS: dict[str, Callable[[str, Callable[[str], str], Sizes, Report], None]] = {
    "registration": registration,
    "lineage": lineage,
    "tasks": task_list,
}


# -- data ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskRow:
    """A task as bulk-loaded: what the registry stores, before backend formatting."""

    pk: uuid.UUID
    task_id: str
    namespace: str
    name: str
    parameters: str  # JSON text
    output_uri: str
    status: str
    created_at: datetime


class TaskMaker:
    """Tasks to register through the API, each needing two tasks registered before it."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.known: list[str] = []
        self.count = 0

    def batch(self, n: int) -> list[dict[str, Any]]:
        """`n` new tasks; each depends on two earlier ones (earlier in the batch or before)."""
        return [self.one() for _ in range(n)]

    def one(self, among: int | None = None) -> dict[str, Any]:
        """A new task needing two earlier tasks (of the first `among`, when given)."""
        task_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        self.count += 1
        earlier = self.known[:among] if among is not None else self.known
        depends = self.rng.sample(earlier, 2) if len(earlier) >= 2 else []
        self.known.append(task_id)
        return {
            "taskId": task_id,
            "namespace": "features",
            "name": "aggregate",
            "version": "1",
            "parameters": {
                "date": f"2026-11-{self.count % 28 + 1:02d}",
                "window": 28,
                "partition": self.count % 64,
            },
            "outputUri": f"s3://bench/features/aggregate/{task_id}.parquet",
            "dependencies": depends,
        }


class LayeredGraph:
    """`layers` x `width` tasks; each needs 2 tasks of the layer below and, half the time,
    one more from 2 to 10 layers below (a source or an early intermediate, as real pipelines
    have)."""

    def __init__(self, layers: int, width: int, rng: random.Random) -> None:
        self.layers, self.width, self.rng = layers, width, rng
        self.pks = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(layers * width)]
        self.ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in self.pks]
        self.edge_count = 0

    def top_layer(self) -> list[str]:
        """Task ids of the top layer: the tasks with the largest upstream."""
        return self.ids[(self.layers - 1) * self.width :][:50]

    def tasks(self) -> Iterator[TaskRow]:
        """Every task, bottom layer first."""
        start = datetime.now(UTC) - timedelta(days=1)
        names = ["fetch", "parse", "encode", "aggregate", "join", "fit", "evaluate"]
        for i, (pk, task_id) in enumerate(zip(self.pks, self.ids, strict=True)):
            layer, index = divmod(i, self.width)
            yield TaskRow(
                pk,
                task_id,
                "lineage",
                names[layer % len(names)],
                json.dumps({"layer": layer, "index": index}),
                f"s3://bench/lineage/{task_id}.json",
                "completed",
                start + timedelta(milliseconds=i),
            )

    def edges(self) -> Iterator[tuple[uuid.UUID, uuid.UUID]]:
        """(upstream, downstream) row ids."""
        w = self.width
        for layer in range(1, self.layers):
            for index in range(w):
                down = self.pks[layer * w + index]
                ups = [(layer - 1) * w + j for j in self.rng.sample(range(w), 2)]
                if layer >= 2 and self.rng.random() < 0.5:
                    below = self.rng.randint(max(0, layer - 10), layer - 2)
                    ups.append(below * w + self.rng.randrange(w))
                for up in ups:
                    self.edge_count += 1
                    yield self.pks[up], down


FAMILIES: dict[str, list[str]] = {
    "ingest": ["fetch", "parse", "validate"],
    "features": ["encode", "aggregate", "join", "window"],
    "training": ["fit", "tune", "evaluate"],
    "reports": ["summary", "plot", "export"],
}
STATUSES = {"completed": 82, "failed": 4, "cancelled": 3, "pending": 8, "running": 3}


class TaskTable:
    """`n` tasks of 13 families (sizes skewed), statuses spread, a year of creation times."""

    def __init__(self, n: int, rng: random.Random) -> None:
        self.n, self.rng = n, rng
        self.families = [(ns, name) for ns, names in FAMILIES.items() for name in names]
        self.weights = [1 / (rank + 1) ** 0.7 for rank in range(len(self.families))]
        rng.shuffle(self.families)
        self.rare_seed = 0
        self.kinds: dict[str, int] = {}

    def tasks(self) -> Iterator[TaskRow]:
        """The tasks, oldest first; sets `rare_seed` (one early training task's) and `kinds`."""
        rng = self.rng
        start = datetime.now(UTC) - timedelta(days=365)
        step = 365 * 86_400 / self.n
        families = rng.choices(self.families, self.weights, k=self.n)
        statuses = rng.choices(list(STATUSES), list(STATUSES.values()), k=self.n)
        kinds = ["gbm", "linear", "forest", "mlp"]
        for i in range(self.n):
            namespace, name = families[i]
            created = start + timedelta(seconds=i * step + rng.random() * step)
            date = (created - timedelta(days=1)).strftime("%Y-%m-%d")
            parameters: dict[str, Any] = {"date": date, "partition": i % 64}
            if namespace == "training":
                seed = rng.getrandbits(40)
                if not self.rare_seed and i > self.n // 10:
                    self.rare_seed = seed
                kind = rng.choice(kinds)
                self.kinds[kind] = self.kinds.get(kind, 0) + 1
                parameters["model"] = {
                    "kind": kind,
                    "depth": rng.randint(1, 12),
                    "learning_rate": rng.choice([0.01, 0.03, 0.1]),
                }
                parameters["seed"] = seed
            elif namespace == "ingest":
                parameters["source"] = f"s3://raw/source-{rng.randrange(40)}/"
            elif namespace == "features":
                parameters["window"] = rng.choice([7, 14, 28, 56])
            else:
                parameters["format"] = rng.choice(["html", "pdf", "csv"])
            task_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            yield TaskRow(
                uuid.UUID(int=rng.getrandbits(128), version=4),
                task_id,
                namespace,
                name,
                json.dumps(parameters),
                f"s3://bench/{namespace}/{name}/{task_id}.json",
                statuses[i],
                created,
            )


def bulk_load(
    url: str,
    workspace: uuid.UUID,
    tasks: Iterator[TaskRow],
    edges: Iterator[tuple[uuid.UUID, uuid.UUID]] | Sequence[tuple[uuid.UUID, uuid.UUID]],
) -> None:
    """Insert tasks and edges straight into the tables, as the registry would store them."""
    if make_url(url).get_backend_name() == "postgresql":
        _load_postgresql(url, workspace, tasks, edges)
    else:
        _load_sqlite(url, workspace, tasks, edges)


TASK_COLUMNS = (
    "id, workspace_id, task_id, namespace, name, version, parameters, output_uri, "
    "status, created_at, updated_at"
)


def _load_postgresql(
    url: str,
    workspace: uuid.UUID,
    tasks: Iterator[TaskRow],
    edges: Iterator[tuple[uuid.UUID, uuid.UUID]] | Sequence[tuple[uuid.UUID, uuid.UUID]],
) -> None:
    ws = str(workspace)
    with (
        psycopg.connect(_libpq(url), autocommit=True) as connection,
        connection.transaction(),
        connection.cursor() as cursor,
    ):
        with cursor.copy(f"COPY tasks ({TASK_COLUMNS}) FROM STDIN") as copy:
            for chunk in _chunks(tasks, 10_000):
                buffer = io.StringIO()
                for t in chunk:
                    stamp = t.created_at.isoformat()
                    buffer.write(
                        f"{t.pk}\t{ws}\t{t.task_id}\t{t.namespace}\t{t.name}\t1\t"
                        f"{t.parameters}\t{t.output_uri}\t{t.status}\t{stamp}\t{stamp}\n"
                    )
                copy.write(buffer.getvalue())
        with cursor.copy(
            "COPY task_dependencies (upstream_pk, downstream_pk, workspace_id) FROM STDIN"
        ) as copy:
            for edge_chunk in _chunks(iter(edges), 50_000):
                copy.write("".join(f"{up}\t{down}\t{ws}\n" for up, down in edge_chunk))
    analyze(url)


def analyze(url: str) -> None:
    """Vacuum and analyze PostgreSQL's task tables, as autovacuum does after bulk writes."""
    with psycopg.connect(_libpq(url), autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE tasks")
        connection.execute("VACUUM ANALYZE task_dependencies")


def _load_sqlite(
    url: str,
    workspace: uuid.UUID,
    tasks: Iterator[TaskRow],
    edges: Iterator[tuple[uuid.UUID, uuid.UUID]] | Sequence[tuple[uuid.UUID, uuid.UUID]],
) -> None:
    # SQLAlchemy's formats on SQLite: UUIDs as 32 hex digits, timestamps as naive UTC text.
    ws = workspace.hex
    database = make_url(url).database
    assert database is not None
    connection = sqlite3.connect(database, timeout=30)
    try:
        for chunk in _chunks(tasks, 100_000):
            with connection:
                connection.executemany(
                    f"INSERT INTO tasks ({TASK_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    [
                        (
                            t.pk.hex,
                            ws,
                            t.task_id,
                            t.namespace,
                            t.name,
                            "1",
                            t.parameters,
                            t.output_uri,
                            t.status,
                            stamp,
                            stamp,
                        )
                        for t in chunk
                        for stamp in [t.created_at.replace(tzinfo=None).isoformat(" ")]
                    ],
                )
        for edge_chunk in _chunks(iter(edges), 100_000):
            with connection:
                connection.executemany(
                    "INSERT INTO task_dependencies (upstream_pk, downstream_pk, workspace_id) "
                    "VALUES (?,?,?)",
                    [(up.hex, down.hex, ws) for up, down in edge_chunk],
                )
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()


def _chunks(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# -- databases, server and client ------------------------------------------------------------


@contextlib.contextmanager
def databases(backend: str, scratch: Path) -> Iterator[Callable[[str], str]]:
    """A factory of fresh, migrated databases of `backend`, by name."""
    if backend == "sqlite":

        def fresh_sqlite(name: str) -> str:
            url = f"sqlite+aiosqlite:///{scratch / f'{name}.db'}"
            upgrade(url)
            return url

        yield fresh_sqlite
        return
    with postgresql_cluster() as server:
        admin = _libpq(server)

        def fresh_postgresql(name: str) -> str:
            with psycopg.connect(admin, autocommit=True) as connection:
                connection.execute(f'CREATE DATABASE "{name}"')
            url = make_url(server).set(database=name).render_as_string(hide_password=False)
            upgrade(url)
            return url

        yield fresh_postgresql


@contextlib.contextmanager
def postgresql_cluster() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on a free loopback port (run as `postgres` under root)."""
    as_pg: list[str | Path] = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    directory = Path(tempfile.mkdtemp(prefix="stardag-bench-pg-"))
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    data, port = directory / "data", _free_port()
    subprocess.run(
        [
            *as_pg,
            PGBIN / "initdb",
            "-D",
            data,
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    options = f"-h 127.0.0.1 -p {port} -k {directory} -c fsync=off -c synchronous_commit=off"
    subprocess.run(
        [
            *as_pg,
            PGBIN / "pg_ctl",
            "-D",
            data,
            "-l",
            directory / "server.log",
            "-w",
            "-o",
            options,
            "start",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_pg, PGBIN / "pg_ctl", "-D", data, "-m", "fast", "stop"],
            stdout=subprocess.DEVNULL,
            check=False,
        )
        shutil.rmtree(directory, ignore_errors=True)


def serve(url: str, port: int) -> None:
    """Serve the registry on `url` at loopback `port` (the server subprocess)."""
    app = create_app(Settings(database_url=url))
    # A long keep-alive: the benchmark's connections idle through the bulk loads.
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=3600,
    )


@contextlib.contextmanager
def serving(url: str) -> Iterator[str]:
    """The registry on `url` in a uvicorn subprocess, one worker; yields its base URL."""
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    command = [sys.executable, __file__, "--serve", url, str(port)]
    with tempfile.TemporaryFile() as log:

        def output() -> str:
            log.seek(0)
            return log.read().decode(errors="replace")

        process = subprocess.Popen(command, stdout=log, stderr=log)
        try:
            _wait_for_health(process, base_url, output)
            yield base_url
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if errors := output().strip():
                print(f"  server log:\n{errors[-3000:]}", file=sys.stderr)


def _wait_for_health(
    process: subprocess.Popen[bytes], base_url: str, output: Callable[[], str]
) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the registry server exited:\n{output()}")
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{base_url}/healthz", timeout=1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"the registry server did not answer /healthz in 60 s:\n{output()}")


class Client:
    """A GraphQL client on one keep-alive HTTP/1.1 connection.

    The standard library's `http.client`: it costs about 0.4 ms of CPU per request here,
    against 1.4 ms for httpx, and the client shares the machine's two cores with the server.
    """

    def __init__(self, base_url: str) -> None:
        url = urllib.parse.urlsplit(base_url)
        self.connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=600)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.connection.close()

    def __call__(self, query: str, **variables: Any) -> dict[str, Any]:
        """The data of `query`; raises on any GraphQL error."""
        return self.timed(query, **variables)[0]

    def timed(self, query: str, **variables: Any) -> tuple[dict[str, Any], float]:
        """The data of `query` and the seconds the round trip took (JSON coding excluded)."""
        body = json.dumps({"query": query, "variables": variables}).encode()
        started = time.perf_counter()
        self.connection.request("POST", "/graphql", body=body, headers=JSON_HEADERS)
        response = self.connection.getresponse()
        raw = response.read()
        seconds = time.perf_counter() - started
        answer = json.loads(raw)
        if response.status != 200 or answer.get("errors"):
            raise RuntimeError(f"{response.status}: {raw[:2000]!r}")
        data: dict[str, Any] = answer["data"]
        return data, seconds

    def workspace_id(self) -> str:
        """The global id of the local workspace."""
        data = self("{ organizations { workspaces { id } } }")
        return str(data["organizations"][0]["workspaces"][0]["id"])

    def workspace_pk(self, global_id: str) -> uuid.UUID:
        """The row id inside a workspace's global id (`base64("Workspace:<uuid>")`)."""
        return uuid.UUID(base64.b64decode(global_id).decode().split(":", 1)[1])


JSON_HEADERS = {"content-type": "application/json"}


def concurrently(clients: list[Client], ws: str, payloads: list[Any]) -> list[float]:
    """Latencies of one registration per payload, the payloads shared by `clients` threads."""
    lock = threading.Lock()
    latencies: list[float] = []
    failures: list[BaseException] = []

    def work(client: Client, share: list[Any]) -> None:
        try:
            for payload in share:
                _, seconds = client.timed(REGISTER, ws=ws, tasks=payload)
                with lock:
                    latencies.append(seconds)
        except BaseException as error:
            failures.append(error)

    shares = [payloads[i :: len(clients)] for i in range(len(clients))]
    if len(clients) == 1:
        work(clients[0], shares[0])
    else:
        threads = [
            threading.Thread(target=work, args=(client, share))
            for client, share in zip(clients, shares, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if failures:
        raise failures[0]
    return latencies


# -- profiles ------------------------------------------------------------------------------


def profile(
    url: str,
    backend: str,
    benchmark: str,
    query: str,
    variables: Callable[[], dict[str, Any]],
    *,
    warm_up: bool = True,
) -> str:
    """The operation run in this process: its SQL statements and their times, the plan of the
    slowest, and where the Python time goes. `variables` gives each run its own (a mutation
    run twice would measure the idempotent re-registration the second time)."""
    return asyncio.run(_profile(url, backend, benchmark, query, variables, warm_up))


async def _profile(
    url: str,
    backend: str,
    benchmark: str,
    query: str,
    variables: Callable[[], dict[str, Any]],
    warm_up: bool,
) -> str:
    engine = create_engine(Settings(database_url=url))
    statements: list[tuple[float, str, Any]] = []

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        conn.info["bench_started"] = time.perf_counter()

    def after(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        started = conn.info.pop("bench_started")
        statements.append((time.perf_counter() - started, statement, parameters))

    try:
        sessions, reads = create_sessionmaker(engine), create_read_sessionmaker(engine)
        async with sessions() as session:
            local_user = (await ensure_local_identity(session)).user_id

        async def execute() -> None:
            # As the app does for each request: the caller read with their workspaces.
            async with reads() as session:
                identity = await local_identity(session, local_user)
            context = Context(
                sessions, identity, Notifier(), request_id="bench", read_sessions=reads
            )
            result = await schema.execute(query, variable_values=variables(), context_value=context)
            if result.errors:
                raise RuntimeError(f"profile of {benchmark}: {result.errors}")

        if warm_up:
            await execute()  # compiled statements, pooled connections
        event.listen(engine.sync_engine, "before_cursor_execute", before)
        event.listen(engine.sync_engine, "after_cursor_execute", after)
        started = time.perf_counter()
        await execute()
        total = time.perf_counter() - started
        event.remove(engine.sync_engine, "before_cursor_execute", before)
        event.remove(engine.sync_engine, "after_cursor_execute", after)
        profiler = cProfile.Profile()
        profiler.enable()
        await execute()
        profiler.disable()
        in_sql = sum(seconds for seconds, _, _ in statements)
        lines = [
            f"### {backend}: {benchmark}",
            "",
            f"In process (`schema.execute`, no HTTP): {total * 1e3:.1f} ms, of which "
            f"{in_sql * 1e3:.1f} ms inside {len(statements)} SQL statements (cursor execute to "
            f"return) and {(total - in_sql) * 1e3:.1f} ms outside them (GraphQL, ORM, pool "
            "checkouts and pings, BEGIN/COMMIT, result conversion).",
            "",
            "| ms | statement |",
            "|---:|---|",
        ]
        for seconds, statement, _ in sorted(statements, key=lambda s: -s[0])[:6]:
            lines.append(f"| {seconds * 1e3:.2f} | `{_one_line(statement, 160)}` |")
        lines += ["", _python_time(profiler)]
        # Only reads are explained: EXPLAIN ANALYZE would run a write again, on rows it made.
        reads = [s for s in statements if s[1].split(None, 1)[0].upper() in ("SELECT", "WITH")]
        slowest = max(reads, key=lambda s: s[0], default=None)
        if slowest is not None and slowest[0] > 0.002:
            lines += [
                "",
                f"Plan of the slowest read ({slowest[0] * 1e3:.1f} ms):",
                "",
                "```",
                await _plan(engine, slowest[1], slowest[2]),
                "```",
            ]
        return "\n".join(lines) + "\n"
    finally:
        await engine.dispose()


# Where Python time goes in a request, by (file suffix, function): cumulative times.
PHASES = {
    ("graphql/language/parser.py", "parse"): "GraphQL parse",
    ("graphql/validation/validate.py", "validate"): "GraphQL validation",
    ("strawberry/types/arguments.py", "convert_arguments"): "input conversion",
    ("sqlalchemy/pool/base.py", "_checkout"): "pool checkout (pre-ping)",
    ("sqlalchemy/sql/dml.py", "values"): "INSERT .values(rows)",
    ("sqlalchemy/sql/elements.py", "_compiler"): "SQL compilation (cache misses)",
}


def _python_time(profiler: cProfile.Profile) -> str:
    """Where the time goes under cProfile: by phase, by package, and the busiest functions."""
    stats: dict[tuple[str, int, str], tuple[Any, ...]] = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    phases: dict[str, float] = {}
    by_package: dict[str, float] = {}
    for (filename, _, name), (_, _, own, cumulative, *_) in stats.items():
        for (suffix, function), phase in PHASES.items():
            if name == function and filename.endswith(suffix):
                phases[phase] = phases.get(phase, 0.0) + cumulative
        package = _package(filename, name)
        by_package[package] = by_package.get(package, 0.0) + own
    total = sum(by_package.values()) or 1.0
    shown_phases = ", ".join(
        f"{phase} {seconds * 1e3:.1f} ms" for phase, seconds in phases.items() if seconds
    )
    shares = ", ".join(
        f"{package} {own / total:.0%}"
        for package, own in sorted(by_package.items(), key=lambda item: -item[1])[:7]
    )
    top = sorted(stats.items(), key=lambda item: -item[1][2])[:5]
    functions = "; ".join(
        f"`{_package(filename, name)}:{name}` {own * 1e3:.0f} ms"
        for (filename, _, name), (_, _, own, *_) in top
    )
    return (
        f"Under cProfile (a third run: {total * 1e3:.0f} ms, as profiling inflates Python "
        f"calls): {shown_phases}. Own time by package: {shares}. Most own time: {functions}."
    )


def _package(filename: str, name: str) -> str:
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if "/stardag_graphql/" in filename:
        return "stardag_graphql"
    if filename == "~":
        return "waiting (epoll)" if "poll" in name else "builtins"
    if "/asyncio/" in filename:
        return "asyncio"
    return "stdlib"


async def _plan(engine: Any, statement: str, parameters: Any) -> str:
    async with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            rows = await connection.exec_driver_sql(
                f"EXPLAIN (ANALYZE, BUFFERS) {statement}", parameters
            )
            return "\n".join(_clipped(row[0], 200) for row in rows)
        rows = await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
        depth: dict[int, int] = {0: -1}
        lines = []
        for node, parent, _, detail in rows:
            depth[node] = depth.get(parent, -1) + 1
            lines.append(f"{'  ' * depth[node]}{detail}")
        return "\n".join(lines)


# -- helpers ---------------------------------------------------------------------------------


def _total(runs: list[tuple[float, Any]]) -> float:
    return sum(seconds for seconds, _ in runs)


def _always(variables: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    return lambda: variables


def _revision() -> str:
    """Where `stardag_graphql` was imported from, and its git commit when it has one."""
    package = Path(stardag_graphql.__file__).parent
    git = ["git", "-C", str(package)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    if commit.returncode != 0:
        return str(package)
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--", "."], capture_output=True, text=True
    ).stdout.strip()
    return f"{package} at commit {commit.stdout.strip()}" + (
        " with uncommitted changes" if dirty else ""
    )


def _missed(result: Result) -> bool:
    return result.target is not None and not result.target.met(result.value)


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _quantile(samples: Sequence[float], percent: int) -> float:
    """The `percent` percentile of `samples` (seconds), in milliseconds."""
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(percent / 100 * len(ordered)) - 1))
    return ordered[index] * 1e3


def _ms(samples: Sequence[float]) -> float:
    return statistics.median(samples) * 1e3


def _p99(samples: Sequence[float]) -> str:
    return f"p99 {_number(_quantile(samples, 99))} ms"


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _clipped(line: str, limit: int) -> str:
    """`line` cut to `limit` characters (plans spell out every IN-list value)."""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _one_line(statement: str, limit: int) -> str:
    text = " ".join(statement.split()).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


if __name__ == "__main__":
    main()
