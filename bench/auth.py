"""How long the registry takes to check a credential, beside a plain-Python floor.

    uv run python bench/auth.py [--quick]

Measured in one process, median of repeated batches, in microseconds per check:

- floor: one SHA-256 of a key and a constant-time comparison, nothing else;
- API key, hash: `hash_key` + `compare_digest`, what the registry adds to a lookup;
- API key, with lookup: `verify_api_key` on an embedded SQLite database (one indexed query);
- registry token: `TokenSigner.verify` (an ES256 signature and the claims);
- full identify, token: `Authenticator.identify` with a registry token (verify, then the
  caller's role read from SQLite), which every server-mode request runs.
"""

import argparse
import asyncio
import hashlib
import hmac
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

from starlette.datastructures import Headers

from stardag_graphql.authentication import Authenticator, ServerAuth
from stardag_graphql.database import create_engine, create_sessionmaker
from stardag_graphql.migrations import ensure_schema
from stardag_graphql.models import Membership, Organization, Role, User
from stardag_graphql.oidc import ProviderVerifier
from stardag_graphql.ratelimit import RateLimiter
from stardag_graphql.settings import Settings
from stardag_graphql.store.apikeys import create_api_key, hash_key, verify_api_key
from stardag_graphql.store.organizations import create_workspace
from stardag_graphql.tokens import TokenSigner


def per_call(run: Callable[[], object], calls: int, batches: int) -> float:
    """Median microseconds per call of `run` over `batches` batches of `calls` calls."""
    timings = []
    for _ in range(batches):
        start = time.perf_counter()
        for _ in range(calls):
            run()
        timings.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(timings)


async def per_await(run: Callable[[], Awaitable[object]], calls: int, batches: int) -> float:
    """Median microseconds per awaited call of `run`."""
    timings = []
    for _ in range(batches):
        start = time.perf_counter()
        for _ in range(calls):
            await run()
        timings.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(timings)


async def main(quick: bool) -> None:
    calls, batches = (200, 3) if quick else (2000, 7)
    with tempfile.TemporaryDirectory() as root:
        settings = Settings(database_url=f"sqlite+aiosqlite:///{Path(root) / 'bench.db'}")
        await ensure_schema(settings)
        engine = create_engine(settings)
        sessions = create_sessionmaker(engine)
        async with sessions() as session, session.begin():
            user = User(email="bench@example.com")
            organization = Organization(slug="bench", name="Bench")
            session.add_all([user, organization])
            await session.flush()
            session.add(
                Membership(organization_id=organization.id, user_id=user.id, role=Role.OWNER)
            )
            workspace = await create_workspace(session, organization.id, "main", "Main")
            key = (await create_api_key(session, workspace.id, "bench", user.id)).secret
        signer = TokenSigner.load_or_create(Path(root) / "key.pem", "http://127.0.0.1:8000")
        token, _ = signer.mint(user.id, organization.id, timedelta(minutes=15))
        # The provider is never asked: only registry tokens are checked here.
        provider = ProviderVerifier("http://127.0.0.1:9", "stardag")
        auth = ServerAuth(provider, signer, timedelta(minutes=15))
        authenticator = Authenticator(sessions, RateLimiter(10**9), auth, None)
        headers = Headers({"authorization": f"Bearer {token}"})
        stored = hash_key(key)

        async def lookup() -> object:
            async with sessions() as session:
                return await verify_api_key(session, key)

        rows = {
            "floor: sha256 + compare_digest": per_call(
                lambda: hmac.compare_digest(hashlib.sha256(key.encode()).hexdigest(), stored),
                calls * 10,
                batches,
            ),
            "API key, hash": per_call(
                lambda: hmac.compare_digest(hash_key(key), stored), calls * 10, batches
            ),
            "API key, with lookup (SQLite)": await per_await(lookup, calls, batches),
            "registry token": per_call(lambda: signer.verify(token), calls, batches),
            "full identify, token (SQLite)": await per_await(
                lambda: authenticator.identify(headers), calls, batches
            ),
        }
        await provider.aclose()
        await engine.dispose()
    floor = rows["floor: sha256 + compare_digest"]
    print("| check | µs per check | ratio to floor |")
    print("|---|---:|---:|")
    for name, micros in rows.items():
        print(f"| {name} | {micros:,.1f} | {micros / floor:,.1f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer, shorter batches")
    asyncio.run(main(parser.parse_args().quick))
