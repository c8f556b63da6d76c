"""`stardag gui --native`: the GUI in a desktop window (pywebview on Qt) on a real registry,
under Xvfb; the screenshot is kept in `screenshots/` (a CI artefact). Without a display
server or the `native` extra the command says so in one line."""

import contextlib
import ctypes
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from stardag_core.cli import app
from stardag_gui.native import EXTRA_MODULES
from tests.conftest import free_port
from tests.gui.conftest import Registry

APT_PACKAGES = (
    "xvfb xauth xdotool imagemagick libxcb-cursor0 libxkbcommon-x11-0 libxcb-icccm4 "
    "libxcb-image0 libxcb-keysyms1 libxcb-render-util0 libxcb-xinerama0 libxcb-xkb1 "
    "libxcb-shape0 libxcb-randr0 libegl1 libgl1 libnss3 libxcomposite1 libxdamage1 libxrandr2 "
    "libxtst6 libasound2"
)
TOOLS = ("Xvfb", "xdotool", "import", "identify")
SCREENSHOTS = Path(__file__).parents[2] / "screenshots"
# A drawn page has antialiased text in many shades; an empty or blank window has a handful.
DRAWN_COLOURS = 64


def test_the_native_window_shows_the_gui_and_closing_it_ends_the_process(
    registry: Registry, tmp_path: Path
) -> None:
    require_native_setup()
    with xvfb() as display, native_gui(registry, display, tmp_path / "gui.log") as gui:
        gui.wait_until_serving()
        window = gui.window()
        shot = SCREENSHOTS / "native-window.png"
        colours = gui.screenshot_once_drawn(shot)
        assert colours >= DRAWN_COLOURS, f"{shot} looks blank ({colours} colours)"
        close_window(display, window)
        assert gui.exit_code(timeout=30) == 0, gui.log()
        assert not gui.group_left(timeout=10), "processes outlived the window"


def test_native_names_the_extra_when_it_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "webview", None)  # what find_spec reports when absent
    result = CliRunner().invoke(app, ["gui", "--native"])
    assert result.exit_code == 1
    assert " ".join(result.output.split()) == (
        "error: the native window needs the native extra (missing webview): "
        "pip install 'stardag[native]'"
    )


def test_native_names_the_missing_display(monkeypatch: pytest.MonkeyPatch) -> None:
    require_native_setup()
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    result = CliRunner().invoke(app, ["gui", "--native"])
    assert result.exit_code == 1
    assert " ".join(result.output.split()) == (
        "error: the native window needs a display, but neither DISPLAY nor WAYLAND_DISPLAY is "
        "set: run it in a desktop session, or use `stardag gui` without --native"
    )


def require_native_setup() -> None:
    """Fail (never skip: CI must install them) naming what to install when the display
    server, its tools or the `native` extra are missing."""
    tools = [tool for tool in TOOLS if shutil.which(tool) is None]
    if tools:
        pytest.fail(
            f"the native window test needs {', '.join(tools)}: "
            f"apt-get install -y --no-install-recommends {APT_PACKAGES}"
        )
    modules = [name for name in EXTRA_MODULES if importlib.util.find_spec(name) is None]
    if modules:
        pytest.fail(
            f"the native window test needs the native extra (missing {', '.join(modules)}): "
            "uv sync --all-extras"
        )


@contextlib.contextmanager
def xvfb() -> Iterator[str]:
    """A virtual X display on a free display number (Xvfb picks it); yields ``:N``."""
    read, write = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", "1400x1000x24", "-nolisten", "tcp"],
        pass_fds=(write,),
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    try:
        with os.fdopen(read) as answer:
            number = answer.readline().strip()
        assert number, f"Xvfb did not start; apt-get install -y {APT_PACKAGES}"
        yield f":{number}"
    finally:
        server.terminate()
        server.wait(timeout=10)


class NativeGui:
    """`stardag gui --native` running in its own session (process group) on ``display``."""

    def __init__(self, process: subprocess.Popen[bytes], display: str, port: int, log: Path):
        self.process = process
        self.display = display
        self.port = port
        self.log_path = log

    def log(self) -> str:
        """What the GUI wrote so far (its window's Qt errors included)."""
        return self.log_path.read_text(errors="replace")[-4000:]

    def wait_until_serving(self, timeout: float = 60.0) -> None:
        """Wait until the GUI's HTTP port answers."""

        def serving() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{self.port}/", timeout=2).is_success
            except httpx.TransportError:
                return False

        self.wait_for(serving, timeout, "the GUI never answered on its port")

    def window(self, timeout: float = 60.0) -> str:
        """The id of the GUI's window, once it is on the display."""
        found: list[str] = []

        def shown() -> bool:
            search = ("xdotool", "search", "--name", "^stardag$")
            found[:] = run(self.display, *search, check=False).split()
            return bool(found)

        self.wait_for(shown, timeout, "no window named stardag appeared")
        return found[0]

    def screenshot_once_drawn(self, path: Path, timeout: float = 60.0) -> int:
        """Screenshot the display into ``path`` until the page is drawn and has settled (two
        shots a second apart with as many colours), or time is up; that number of colours."""
        path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + timeout
        previous = -1
        while True:
            run(self.display, "import", "-window", "root", str(path))
            colours = int(run(self.display, "identify", "-format", "%k", str(path)))
            if colours >= DRAWN_COLOURS and colours == previous:
                return colours
            if time.monotonic() > deadline:
                return colours
            previous = colours
            time.sleep(1)

    def group_left(self, timeout: float) -> str:
        """The processes of the GUI's session still running after ``timeout`` seconds (as
        ``ps`` lists them), or nothing once they all ended."""
        deadline = time.monotonic() + timeout
        while True:
            listing = subprocess.run(
                ["ps", "-o", "pid=,args=", "-g", str(self.process.pid)],
                capture_output=True,
                text=True,
                check=False,
            ).stdout
            if not listing or time.monotonic() > deadline:
                return listing
            time.sleep(0.25)

    def exit_code(self, timeout: float) -> int | None:
        """The process's exit code once it ended within ``timeout`` seconds, else None."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            return self.process.wait(timeout=timeout)
        return None

    def wait_for(self, check: Callable[[], bool], timeout: float, failure: str) -> None:
        """Poll ``check`` until it holds; fail with the GUI's output if the process ends or
        time is up."""
        deadline = time.monotonic() + timeout
        while not check():
            if self.process.poll() is not None:
                pytest.fail(
                    f"stardag gui --native ended ({self.process.returncode}): {failure}\n"
                    f"missing Debian packages? apt-get install -y {APT_PACKAGES}\n{self.log()}"
                )
            if time.monotonic() > deadline:
                pytest.fail(f"{failure} within {timeout} s\n{self.log()}")
            time.sleep(0.25)


@contextlib.contextmanager
def native_gui(registry: Registry, display: str, log: Path) -> Iterator[NativeGui]:
    """`stardag gui --native` on ``registry`` and ``display`` with setsid; its whole process
    group (QtWebEngine's helpers included) is stopped afterwards."""
    port = free_port()
    # Without pytest's variables: under pytest NiceGUI would serve a test port, headless.
    inherited = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    env = {
        **inherited,
        "DISPLAY": display,
        "STARDAG_REGISTRY_URL": registry.url,
        "STARDAG_WORKSPACE": registry.workspace_id,
        # Chromium's sandbox refuses to run as root, and Xvfb has no GPU.
        "QTWEBENGINE_CHROMIUM_FLAGS": "--no-sandbox --disable-gpu",
    }
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "stardag_core", "gui", "--native", "--port", str(port)],
            env=env,
            cwd=log.parent,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield NativeGui(process, display, port, log)
    finally:
        stop_group(process)


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """End ``process`` and every process in its group: politely, then by force."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


class ClientMessage(ctypes.Structure):
    """Xlib's ``XClientMessageEvent``."""

    _fields_ = (
        ("type", ctypes.c_int),
        ("serial", ctypes.c_ulong),
        ("send_event", ctypes.c_int),
        ("display", ctypes.c_void_p),
        ("window", ctypes.c_ulong),
        ("message_type", ctypes.c_ulong),
        ("format", ctypes.c_int),
        ("data", ctypes.c_long * 5),
    )


class XEvent(ctypes.Union):
    """Xlib's ``XEvent``: any event, padded to 24 longs."""

    _fields_ = (("xclient", ClientMessage), ("pad", ctypes.c_long * 24))


def close_window(display: str, window: str) -> None:
    """Ask ``window`` to close as a window manager does when a person clicks its close button
    (a ``WM_DELETE_WINDOW`` message; Xvfb runs no window manager to send it)."""
    xlib = ctypes.CDLL("libX11.so.6")
    xlib.XOpenDisplay.restype = ctypes.c_void_p
    xlib.XOpenDisplay.argtypes = (ctypes.c_char_p,)
    xlib.XInternAtom.restype = ctypes.c_ulong
    xlib.XInternAtom.argtypes = (ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int)
    xlib.XSendEvent.argtypes = (
        ctypes.c_void_p,
        ctypes.c_ulong,
        ctypes.c_int,
        ctypes.c_long,
        ctypes.POINTER(XEvent),
    )
    xlib.XCloseDisplay.argtypes = (ctypes.c_void_p,)
    connection = xlib.XOpenDisplay(display.encode())
    assert connection, f"cannot open X display {display}"
    try:
        event = XEvent()
        event.xclient.type = 33  # ClientMessage
        event.xclient.window = int(window)
        event.xclient.message_type = xlib.XInternAtom(connection, b"WM_PROTOCOLS", False)
        event.xclient.format = 32
        event.xclient.data[0] = xlib.XInternAtom(connection, b"WM_DELETE_WINDOW", False)
        assert xlib.XSendEvent(connection, int(window), False, 0, ctypes.byref(event))
    finally:
        xlib.XCloseDisplay(connection)  # flushes the event


def run(display: str, *command: str, check: bool = True) -> str:
    """The output of ``command`` run against ``display``."""
    return subprocess.run(
        command, env={**os.environ, "DISPLAY": display}, capture_output=True, text=True, check=check
    ).stdout
