"""The SDK reporting to a registry: W1 (N=1,000) with no registry, with the GraphQL registry
on loopback, and with build locks, beside the plain-Python floor.

    uv run --locked --all-extras python bench/sdk.py            # 5 runs each
    uv run --locked --all-extras python bench/sdk.py --quick    # 1 run each, N=200
    uv run --locked --all-extras python bench/sdk.py --scratch /dev/shm   # outputs in memory
    uv run --locked --all-extras python bench/sdk.py --against HEAD~3     # before and after

The registry (`stardag serve`, embedded SQLite, local mode) runs in its own process, as it
would for a user, and in two arrangements. In a session of its own, as a registry started in a
terminal of its own (`stardag up`) runs, or in a container: Linux schedules each session as
one group (autogroups) against the build's. And in the build's session, as a registry started
in the background of the same shell script runs (`stardag serve &`), its one thread
scheduled among the build's. On this machine's two cores the second costs the build more
(bench/README.md). Each build runs in a fresh process with a fresh output directory and
outbox, in the environment a user gets from `pip install stardag[registry]`: `bench/.venv-sdk`,
made on first use with the locked versions and this checkout installed in editable mode. The
development environment holds more packages, which the client's imports pick up when present
(selenium brings trio, which httpcore imports: 0.1 s). The table gives medians of the build's
own time (what a user waits for) and of the time until the registry had every report, with
their ratios to the build without a registry. The outputs and outboxes go to `--scratch`
(default: the system's temporary folder); on a RAM disk, the builds make no disk I/O, which
on this machine's disk costs more CPU than the build's Python, and the registry's share shows.

The CPU columns add up the CPU time of the build's process (all of it, imports included) and
of the registry's process while it took the build's reports: on a machine whose cores the
build keeps busy, the registry's CPU comes out of the build's wall time.

This machine's speed drifts by up to 1.8x within minutes, so the runs interleave, each round
in another order, and the table adds paired ratios: the median of each round's ratio to the
same round's build without a registry, with the range of the middle half of those ratios (a
median whose range is wide says little). `--against REV` measures a change: the checkout at
the git revision REV (a worktree, with its own user environment and its own registry server)
builds in the same rounds as this one, and the table ends with each contender's paired
ratio of this checkout to REV.
"""

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from workloads.scratch import scratch
from workloads.serving import Server, stardag_server

HERE = Path(__file__).parent
OWN, SHARED = "own session", "the build's session"


@dataclass(frozen=True)
class Mode:
    """How a build reports: `reporting.py`'s mode, and the session of the registry it reports
    to (none without a registry)."""

    name: str
    reporting: str
    session: str | None = None


NONE = Mode("no registry", "none")
MODES = (
    NONE,
    Mode("GraphQL registry", "registry", OWN),
    Mode("registry + locks", "locks", OWN),
    Mode("GraphQL registry, in the build's session", "registry", SHARED),
    Mode("registry + locks, in the build's session", "locks", SHARED),
)


@dataclass(frozen=True)
class Registry:
    """A running registry and the workspace the builds report to."""

    server: Server
    workspace: str


@dataclass(frozen=True)
class Checkout:
    """A checkout of stardag under measurement: its name in the table, its user environment's
    Python, its workloads, and its own registries, one in a session of its own and one in
    the builds' session."""

    name: str
    python: Path
    workloads: Path
    registries: dict[str, Registry]


@dataclass(frozen=True)
class Run:
    """One build: its own time, the time until the registry had every report, and the CPU
    time of its process (`cpu`) and of the registry's meanwhile."""

    built: float
    reported: float
    cpu: float
    registry_cpu: float

    @property
    def total_cpu(self) -> float:
        return self.cpu + self.registry_cpu


def workspace_of(url: str) -> str:
    request = urllib.request.Request(
        f"{url}/graphql",
        data=json.dumps({"query": "{ organizations { workspaces { id } } }"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:
        data = json.load(response)["data"]
    return str(data["organizations"][0]["workspaces"][0]["id"])


def user_environment(project: Path) -> Path:
    """`<project>/bench/.venv-sdk`, made if missing: stardag with its `registry` extra and
    nothing else, at the locked versions; returns its Python."""
    venv = project / "bench" / ".venv-sdk"
    python = venv / "bin" / "python"
    if python.exists():
        return python
    locked = subprocess.run(
        ["uv", "export", "--locked", "--no-dev", "--extra", "registry", "--no-emit-project"],
        cwd=project,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    subprocess.run(["uv", "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
    install = ["uv", "pip", "install", "--quiet", "--compile-bytecode", "--python", str(python)]
    subprocess.run([*install, "-r", "-"], input=locked, text=True, check=True)
    subprocess.run([*install, "--no-deps", "--editable", str(project)], check=True)
    return python


@contextlib.contextmanager
def worktree(revision: str) -> Iterator[Path]:
    """The repository at `revision`, checked out in a temporary folder while in use."""
    with tempfile.TemporaryDirectory() as parent:
        path = Path(parent) / "checkout"
        git = ["git", "-C", str(HERE.parent)]
        subprocess.run([*git, "worktree", "add", "--detach", str(path), revision], check=True)
        try:
            yield path
        finally:
            subprocess.run([*git, "worktree", "remove", "--force", str(path)], check=True)


@contextlib.contextmanager
def checkout(name: str, project: Path, directory: Path) -> Iterator[Checkout]:
    """`project` ready to measure, with its registries served from its own code (this
    environment's packages, the project's own modules first on the path)."""
    python = user_environment(project)
    path = os.pathsep.join(filter(None, [str(project), os.environ.get("PYTHONPATH")]))
    environment = {"PYTHONPATH": path}
    with contextlib.ExitStack() as stack:
        registries = {}
        for session in (OWN, SHARED):
            folder = directory / ("own" if session == OWN else "shared")
            folder.mkdir(parents=True)
            server = stack.enter_context(
                stardag_server("serve", folder, environment=environment, own_session=session == OWN)
            )
            registries[session] = Registry(server, workspace_of(server.url))
        yield Checkout(name, python, project / "bench" / "workloads", registries)


def children_cpu_seconds() -> float:
    """The CPU time of this process's finished children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def floor_run(n: int, folder: Callable[[], str]) -> Run:
    root = folder()
    started, cpu = time.perf_counter(), children_cpu_seconds()
    subprocess.run(
        [sys.executable, str(HERE / "workloads" / "floor.py"), "w1", root, str(n), "--durable"],
        check=True,
    )
    seconds = time.perf_counter() - started
    return Run(seconds, seconds, children_cpu_seconds() - cpu, 0.0)


def build_run(n: int, mode: Mode, checkout: Checkout, folder: Callable[[], str]) -> Run:
    root = folder()
    outbox = f"{root}/outbox.db"
    registry = checkout.registries[mode.session or OWN]
    server = registry.server
    arguments = [f"{root}/out", str(n), mode.reporting, server.url, registry.workspace, outbox]
    cpu, registry_cpu = children_cpu_seconds(), server.cpu_seconds()
    # The build's process ends once the registry confirmed every report.
    done = subprocess.run(
        [str(checkout.python), str(checkout.workloads / "reporting.py"), *arguments],
        check=True,
        capture_output=True,
        text=True,
        cwd=checkout.workloads,
    )
    cpu, registry_cpu = children_cpu_seconds() - cpu, server.cpu_seconds() - registry_cpu
    built, reported = done.stdout.split()
    return Run(float(built), float(reported), cpu, registry_cpu)


def ratios(numerators: list[float], denominators: list[float]) -> list[float]:
    """Each round's ratio."""
    return [a / b for a, b in zip(numerators, denominators, strict=True)]


def paired(numerators: list[float], denominators: list[float]) -> float:
    """The median of the rounds' ratios."""
    return statistics.median(ratios(numerators, denominators))


def middle_half(numerators: list[float], denominators: list[float]) -> str:
    """The range of the middle half of the rounds' ratios (their interquartile range), which
    says how far the median can be trusted on a noisy machine; nothing for under 4 rounds."""
    if len(numerators) < 4:
        return ""
    low, _, high = statistics.quantiles(ratios(numerators, denominators), n=4)
    return f"{low:.2f} to {high:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one run each, N=200")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--scratch", default=None, help="where outputs and outboxes go")
    parser.add_argument("--against", metavar="REV", help="also measure the checkout at REV")
    args = parser.parse_args()
    n = 200 if args.quick else 1000
    rounds = args.runs or (1 if args.quick else 5)
    floors: list[Run] = []
    with contextlib.ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        folder = stack.enter_context(scratch(args.scratch))
        checkouts = [stack.enter_context(checkout("this", HERE.parent, directory / "this"))]
        if args.against:
            before = stack.enter_context(worktree(args.against))
            checkouts.append(stack.enter_context(checkout(args.against, before, directory / "rev")))
        contenders = [(each, mode) for each in checkouts for mode in MODES]
        runs: dict[tuple[str, str], list[Run]] = {(c.name, m.name): [] for c, m in contenders}
        for round_ in range(rounds):
            floors.append(floor_run(n, folder))
            turn = round_ % len(contenders)
            for each, mode in contenders[turn:] + contenders[:turn]:
                runs[each.name, mode.name].append(build_run(n, mode, each, folder))
    builds = {key: [run.built for run in each] for key, each in runs.items()}
    cpus = {key: [run.total_cpu for run in each] for key, each in runs.items()}
    where = args.scratch or tempfile.gettempdir()
    print(f"W1 N={n}, class idiom, thread executor, outputs in {where}; medians of {rounds} run(s)")
    print("(paired: the median of each round's ratio to that round's build without a registry,")
    print("and the range of the middle half of those ratios;")
    print("CPU: the build's process and the registry's, in CPU-seconds)\n")
    print(
        "| contender | build (s) | ratio | paired ratio | middle half "
        "| CPU: build + registry (s) | paired CPU ratio | until reported (s) | ratio |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    medians = {key: statistics.median(times) for key, times in builds.items()}
    overheads = {key: paired(times, builds[key[0], NONE.name]) for key, times in builds.items()}
    floor = statistics.median(run.built for run in floors)
    floor_cpu = statistics.median(run.cpu for run in floors)
    print(
        f"| plain-Python floor (whole process) | {floor:.3f} "
        f"| {floor / medians['this', NONE.name]:.2f} | | | {floor_cpu:.2f} | | | |"
    )
    for each in checkouts:
        alone = medians[each.name, NONE.name]
        for mode in MODES:
            key = each.name, mode.name
            reported = statistics.median(run.reported for run in runs[key])
            cpu = statistics.median(run.cpu for run in runs[key])
            registry_cpu = statistics.median(run.registry_cpu for run in runs[key])
            name = mode.name if len(checkouts) == 1 else f"{each.name}: {mode.name}"
            alone_builds = builds[each.name, NONE.name]
            spread = "" if mode is NONE else middle_half(builds[key], alone_builds)
            print(
                f"| {name} | {medians[key]:.3f} | {medians[key] / alone:.2f} "
                f"| {overheads[key]:.2f} | {spread} | {cpu:.2f} + {registry_cpu:.2f} "
                f"| {paired(cpus[key], cpus[each.name, NONE.name]):.2f} "
                f"| {reported:.3f} | {reported / alone:.2f} |"
            )
    if args.against:
        print(f"\nThis checkout against {args.against}, paired (below 1: faster now):\n")
        print("| contender | build | middle half | paired ratio to no registry |")
        print("|---|---|---|---|")
        for mode in MODES:
            now, then = ("this", mode.name), (args.against, mode.name)
            change = "" if mode is NONE else f"{overheads[now]:.2f} against {overheads[then]:.2f}"
            build = paired(builds[now], builds[then])
            spread = middle_half(builds[now], builds[then])
            print(f"| {mode.name} | {build:.2f} | {spread} | {change} |")


if __name__ == "__main__":
    main()
