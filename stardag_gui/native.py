"""The native window: the GUI in a desktop window (pywebview on Qt's QtWebEngine) instead of
a browser tab, from the ``native`` extra.

NiceGUI opens the window in a child process; closing it stops the server and the process.
"""

import importlib.util
import os
import sys
from collections.abc import Mapping

from nicegui import app

from stardag_core.exceptions import ConfigError

WINDOW_SIZE = (1280, 860)
EXTRA_MODULES = ("webview", "qtpy", "PySide6")


def check_native(environ: Mapping[str, str] = os.environ, platform: str = sys.platform) -> None:
    """``ConfigError`` naming the fix when a native window cannot open: the ``native`` extra is
    not installed, or (on Linux) there is no display to open it on."""
    missing = [name for name in EXTRA_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(
            f"the native window needs the native extra (missing {', '.join(missing)}): "
            "pip install 'stardag[native]'"
        )
    if platform == "linux" and not (environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY")):
        raise ConfigError(
            "the native window needs a display, but neither DISPLAY nor WAYLAND_DISPLAY is "
            "set: run it in a desktop session, or use `stardag gui` without --native"
        )


def use_qt() -> None:
    """Open the window with Qt, whose QtWebEngine runs the GUI everywhere, rather than a
    system web view (GTK's WebKit may be missing or too old for NiceGUI's import maps)."""
    app.native.start_args["gui"] = "qt"
