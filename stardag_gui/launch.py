"""``stardag gui``: the GUI on the configured registry (see ``stardag_core.profiles``), in a
browser or a native window, on loopback; or, with ``--sign-in``, served to a team on any
address, each person signing in at the registry's identity provider."""

import ipaddress
import socket
from pathlib import Path

from stardag_core.client import open_client
from stardag_core.credentials import NoCredential
from stardag_core.exceptions import ConfigError
from stardag_gui.app import run
from stardag_gui.context import Connection
from stardag_gui.native import check_native
from stardag_gui.signin import discover


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


def signin_connection(registry_url: str | None, public_url: str | None) -> Connection:
    """The registry at ``registry_url``, each person signing in at its identity provider;
    ``ConfigError`` without a URL, ``RegistryError`` when it has no sign-in (local mode) or
    cannot be reached."""
    if not registry_url:
        raise ConfigError(
            "--sign-in needs the registry's URL: --registry-url or STARDAG_GUI_REGISTRY_URL"
        )
    discover(registry_url)
    return Connection(registry_url.rstrip("/"), sign_in=True, public_url=public_url)


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


def gui(
    home: Path,
    *,
    host: str,
    port: int,
    native: bool,
    sign_in: bool = False,
    registry_url: str | None = None,
    public_url: str | None = None,
) -> None:
    """Serve the GUI until interrupted or the window closes: on the configured registry with
    your credential (on loopback only), or, with ``sign_in``, on the registry at
    ``registry_url`` for each person who signs in there (on any address)."""
    if not sign_in and (registry_url is not None or public_url is not None):
        raise ConfigError(
            "--registry-url and --public-url go with --sign-in; without it the GUI uses the "
            "configured registry (see `stardag registry add`)"
        )
    if not sign_in and not is_loopback(host):
        raise ConfigError(
            f"refusing to listen on {host!r}: the GUI acts with your credential, so it listens "
            "on loopback only (127.0.0.1, ::1 or localhost); to serve a team, run it with "
            "--sign-in, where each person signs in"
        )
    if native:
        check_native()
    connection = signin_connection(registry_url, public_url) if sign_in else configured_connection()
    check_port(host, port)
    print(f"stardag GUI on http://{host}:{port}/ for {connection.url}", flush=True)
    run(connection, host=host, port=port, native=native, storage=home / "gui")
