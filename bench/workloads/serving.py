"""A ``stardag`` server command (``serve`` or ``up``) in a subprocess on a free loopback port,
on a fresh SQLite file, for the benchmarks that measure against a running registry."""

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Server:
    """A running ``stardag`` server: its URL and its process id."""

    url: str
    pid: int

    def cpu_seconds(self) -> float:
        """The CPU time the server's process has used so far (all its threads, Linux)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        # utime and stime, the 14th and 15th fields of the line, in clock ticks.
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def stardag_server(
    command: str,
    directory: Path,
    *,
    environment: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    own_session: bool = False,
) -> Iterator[Server]:
    """`stardag <command>` on a free port with its database in ``directory``, once its
    health check answers; stops it afterwards. With ``own_session``, in a session of its
    own, as a server started from a terminal of its own is."""
    port = free_port()
    # -P: the working directory does not go first on the module path, so the server runs the
    # code the environment (and its PYTHONPATH) points to, not a checkout it was started in.
    process = subprocess.Popen(
        [sys.executable, "-P", "-m", "stardag_core", command, "--port", str(port)],
        env={
            **os.environ,
            "STARDAG_DATABASE_URL": f"sqlite+aiosqlite:///{directory / 'registry.db'}",
            **(environment or {}),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=own_session,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/healthz", timeout=1):
                break
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError(f"stardag {command} did not start")
            time.sleep(0.1)
        yield Server(url, process.pid)
    finally:
        process.terminate()
        process.wait()
