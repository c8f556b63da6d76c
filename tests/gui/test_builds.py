"""The builds page: counters by status, the list of builds, paging, and a click through."""

from nicegui.testing import User

from tests.gui.conftest import Registry, rows_of


async def test_the_builds_page_lists_the_demo_build(user: User, registry: Registry) -> None:
    await user.open("/")

    await user.should_see("Builds of")
    await user.should_see("completed 1")
    (row,) = await rows_of(user, 1)
    assert row["status"] == "COMPLETED"
    assert row["id"] == registry.build_id


async def test_a_status_counter_filters_the_list(user: User) -> None:
    await user.open("/")
    await rows_of(user, 1)

    user.find("failed 0").click()

    assert await rows_of(user, 0) == []
