"""The asynchronous registry client the GUI talks through: queries, subscriptions, errors."""

import pytest

from stardag_core.async_client import AsyncRegistryClient
from stardag_core.exceptions import RegistryError
from tests.conftest import free_port
from tests.gui.conftest import Registry

BUILD_EVENTS = """
subscription($b: ID!) { buildEvents(buildId: $b) { cursor event { kind } } }
"""


async def test_a_query_answers_with_its_data(registry: Registry) -> None:
    client = AsyncRegistryClient(registry.url)
    try:
        data = await client.execute(
            "query($w: ID!) { workspace(id: $w) { slug } }", w=registry.workspace_id
        )
    finally:
        await client.aclose()

    assert data == {"workspace": {"slug": "default"}}


async def test_a_subscription_streams_a_finished_builds_events_then_ends(
    registry: Registry,
) -> None:
    client = AsyncRegistryClient(registry.url)

    kinds = [
        result["buildEvents"]["event"]["kind"]
        async for result in client.subscribe(BUILD_EVENTS, b=registry.build_id)
    ]

    assert sorted(kinds) == ["TASK_COMPLETED"] * 7 + ["TASK_RUNNING"] * 7


async def test_a_refusal_says_what_the_registry_answered(registry: Registry) -> None:
    client = AsyncRegistryClient(registry.url)
    try:
        with pytest.raises(RegistryError, match=r"refused: .*Cannot query field 'nonsense'"):
            await client.execute("{ nonsense }")
    finally:
        await client.aclose()


async def test_an_unreachable_registry_is_named_with_the_fix() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    client = AsyncRegistryClient(url, "sd_secret-key")

    with pytest.raises(RegistryError, match=f"cannot reach the registry at {url}") as error:
        await client.execute("{ organizations { slug } }")
    with pytest.raises(RegistryError, match="is it running"):
        async for _ in client.subscribe(BUILD_EVENTS, b="x"):
            pass

    assert "sd_secret-key" not in str(error.value)
    assert "sd_secret-key" not in repr(client)
