"""``stardag gui``: the GUI on the configured registry (see ``stardag_core.profiles``), in a
browser or a native window."""

import ipaddress
import socket
from pathlib import Path

from stardag_core.client import open_client
from stardag_core.credentials import NoCredential
from stardag_core.exceptions import ConfigError
from stardag_gui.app import run
from stardag_gui.context import Connection
from stardag_gui.native import check_native


def configured_connection() -> Connection:
    """The configured registry, workspace and credential; ``ConfigError`` when none is
    configured, ``RegistryError`` when the workspace cannot be looked up."""
    with open_client() as client:
        credential = client.credential
        return Connection(
            client.config.url,
            None if isinstance(credential, NoCredential) else credential.bearer,
            client.workspace_id(),
        )


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_port(host: str, port: int) -> None:
    """``ConfigError`` naming the fix when ``host:port`` cannot be listened on."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host.strip("[]"), port))
        except OSError as error:
            raise ConfigError(
                f"cannot listen on {host}:{port} ({error.strerror}): pick another port with --port"
            ) from None


def gui(home: Path, *, host: str, port: int, native: bool) -> None:
    """Serve the GUI on the configured registry until interrupted or the window closes."""
    if not is_loopback(host):
        raise ConfigError(
            f"refusing to listen on {host!r}: the GUI acts with your credential, so it listens "
            "on loopback only (127.0.0.1, ::1 or localhost)"
        )
    if native:
        check_native()
    connection = configured_connection()
    check_port(host, port)
    print(f"stardag GUI on http://{host}:{port}/ for {connection.url}", flush=True)
    run(connection, host=host, port=port, native=native, storage=home / "gui")
