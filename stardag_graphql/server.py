"""Running the registry with uvicorn, on loopback unless authentication is configured.

The registry has no login in local mode, so it answers only on a loopback address: anyone
who can reach a wider address would otherwise read and write every workspace. In server mode
every request is authenticated, and it may listen anywhere.
"""

import asyncio
import gc
import ipaddress

import uvicorn

from stardag_graphql.app import create_app, open_database
from stardag_graphql.errors import ServerConfigError
from stardag_graphql.settings import Settings

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """Whether `host` names only this machine (127.0.0.0/8, ::1 or localhost)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_host(host: str, *, server_mode: bool = False) -> None:
    """Refuse to listen on `host` in local mode (no login) unless it is a loopback address."""
    if not server_mode and not is_loopback(host):
        raise ServerConfigError(
            f"refusing to listen on {host!r}: the registry runs in local mode, without "
            "authentication, so it listens on loopback only (127.0.0.1, ::1 or localhost); "
            "reach it from elsewhere through an SSH tunnel, or switch on server mode "
            "(STARDAG_OIDC_ISSUER and STARDAG_OIDC_CLIENT_ID)"
        )


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve the registry until interrupted; `ServerConfigError` before starting if it can't."""
    check_host(host, server_mode=settings.server_mode)
    # Open the database once up front, so a problem is one clear error, not a startup traceback.
    asyncio.run(_check_database(settings))
    app = create_app(settings)
    freeze_heap()
    uvicorn.run(app, host=host, port=port, log_level="info")


def freeze_heap() -> None:
    """Take what a started server holds for good (modules, the GraphQL schema, SQLAlchemy's
    mappers: some 160,000 objects) out of the cyclic garbage collector's sight.

    Python's full collections otherwise traverse all of it again and again: each took about
    200 ms on two vCPUs, once every build or two of 1,000 tasks reported, and stalled every
    request in flight meanwhile (frozen: 10 to 20 ms). Objects made later are collected as
    before. Call it once, in a process that serves for the rest of its life.
    """
    gc.collect()
    gc.freeze()


async def _check_database(settings: Settings) -> None:
    engine = await open_database(settings)
    await engine.dispose()
