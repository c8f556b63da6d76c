"""The task explorer: filters narrow the rows, the URL keeps the view, parameter columns,
paging, and bad input in the URL explained instead of crashing."""

import uuid
from typing import Any

import pytest
from nicegui import ui
from nicegui.testing import User

from tests.gui.conftest import Registry, eventually, rows_of

REGISTER = """
mutation($w: ID!, $tasks: [TaskInput!]!) { registerTasks(workspaceId: $w, tasks: $tasks) {
  registered } }
"""
BATCH = 30
"""Pending tasks registered next to the demo build's 7 completed ones."""


@pytest.fixture(scope="module")
def batch(registry: Registry) -> list[str]:
    """Tasks of a `batch` family with an integer and a text parameter, never built."""
    ids = [str(uuid.uuid4()) for _ in range(BATCH)]
    tasks = [
        {
            "taskId": task_id,
            "name": "batch",
            "namespace": "tests",
            "parameters": {"i": i, "parity": "even" if i % 2 == 0 else "odd"},
        }
        for i, task_id in enumerate(ids)
    ]
    registry.query(REGISTER, w=registry.workspace_id, tasks=tasks)
    return ids


def address(user: User) -> str:
    """The address the page last put into the browser's address bar (without a reload)."""
    assert user.client is not None
    return user.client.sub_pages_router.current_path


def choose(user: User, marker: str, value: Any) -> None:
    """Pick ``value`` in the selector marked ``marker``, as a person picking an option."""
    element = user.find(marker=marker).elements.pop()
    assert isinstance(element, ui.select)
    with user:
        element.set_value(value)


async def test_the_explorer_pages_through_every_task(user: User, batch: list[str]) -> None:
    await user.open("/tasks")

    first = await rows_of(user, 25)
    await user.should_see(f"1-25 of {BATCH + 7}")
    user.find(marker="next-page").click()
    second = await rows_of(user, BATCH + 7 - 25)
    await user.should_see(f"26-{BATCH + 7} of {BATCH + 7}")

    assert {row["id"] for row in first}.isdisjoint(row["id"] for row in second)
    user.find(marker="previous-page").click()
    assert [row["id"] for row in await rows_of(user, 25)] == [row["id"] for row in first]


async def test_a_page_size_choice_changes_the_rows_per_page(user: User, batch: list[str]) -> None:
    await user.open("/tasks")
    await rows_of(user, 25)

    choose(user, "page-size", 10)

    assert len(await rows_of(user, 10)) == 10
    await eventually(lambda: address(user) == "/tasks?size=10")


async def test_a_status_from_the_url_narrows_the_rows(user: User, batch: list[str]) -> None:
    await user.open("/tasks?status=COMPLETED")

    rows = await rows_of(user, 7)

    assert {row["status"] for row in rows} == {"COMPLETED"}
    await user.should_see("status = COMPLETED")


async def test_the_filter_bar_adds_a_condition_and_the_url_keeps_it(
    user: User, batch: list[str]
) -> None:
    await user.open("/tasks")
    await rows_of(user, 25)
    await parameters_offered(user)

    choose(user, "filter-key", "param.parity")
    await eventually(lambda: bool(select_options(user, "filter-value")))
    assert select_options(user, "filter-value") == ["even", "odd"]
    choose(user, "filter-value", "odd")

    rows = await rows_of(user, BATCH // 2)
    assert all(row["name"] == "batch" for row in rows)
    await user.should_see("parity = odd")
    await eventually(lambda: address(user) == "/tasks?param.parity=odd")

    await user.open(address(user))
    assert len(await rows_of(user, BATCH // 2)) == BATCH // 2
    await user.should_see("parity = odd")


async def test_values_are_suggested_by_what_was_typed(user: User, batch: list[str]) -> None:
    await user.open("/tasks")
    await rows_of(user, 25)
    await parameters_offered(user)
    choose(user, "filter-key", "param.i")
    await eventually(lambda: bool(select_options(user, "filter-value")))

    user.find(marker="filter-value").trigger("inputValue", "2")

    await eventually(
        lambda: select_options(user, "filter-value") == ["2", *(str(i) for i in range(20, 30))]
    )


async def test_names_and_namespaces_are_suggested_from_every_family(
    user: User, batch: list[str]
) -> None:
    await user.open("/tasks")
    await rows_of(user, 25)
    choose(user, "filter-key", "namespace")
    await eventually(lambda: select_options(user, "filter-value") == ["stardag.demo", "tests"])

    await user.open("/tasks?namespace=stardag.demo")
    await rows_of(user, 7)
    choose(user, "filter-key", "name")
    await eventually(
        lambda: select_options(user, "filter-value") == ["measure", "report", "summarize"]
    )
    user.find(marker="filter-value").trigger("inputValue", "s")
    await eventually(lambda: select_options(user, "filter-value") == ["summarize"])


async def test_a_number_typed_as_a_value_matches_the_number(user: User, batch: list[str]) -> None:
    await user.open("/tasks?param.i=3")

    (row,) = await rows_of(user, 1)

    assert row["id"] == batch[3]


async def test_name_contains_and_namespace_filters_combine(user: User, batch: list[str]) -> None:
    await user.open("/tasks?name_contains=summ&namespace=stardag.demo")

    rows = await rows_of(user, 3)

    assert {row["name"] for row in rows} == {"summarize"}
    await user.should_see("name contains summ")
    await user.should_see("namespace = stardag.demo")


async def test_two_statuses_match_either(user: User, batch: list[str]) -> None:
    await user.open("/tasks?status=COMPLETED&status=PENDING&size=50")

    assert len(await rows_of(user, BATCH + 7)) == BATCH + 7


async def test_removing_a_chip_drops_its_condition(user: User, batch: list[str]) -> None:
    await user.open("/tasks?status=COMPLETED")
    await rows_of(user, 7)

    chip = user.find(marker="filter-chip").elements.pop()
    assert isinstance(chip, ui.chip)
    with user:
        chip.set_value(False)  # its x clicked

    await rows_of(user, 25)
    await eventually(lambda: address(user) == "/tasks")


async def test_chosen_parameter_columns_show_their_values(user: User, batch: list[str]) -> None:
    await user.open("/tasks?namespace=tests")
    await rows_of(user, 25)

    choose(user, "column-choice", ["i", "parity"])

    def both_columns_shown() -> bool:
        rows = table_rows(user)
        return bool(rows) and all("param.i" in row and "param.parity" in row for row in rows)

    await eventually(both_columns_shown)
    shown = {row["id"]: (row["param.i"], row["param.parity"]) for row in table_rows(user)}
    # The 30 tasks were registered at one instant, so which 25 make the first page is up to
    # their random row ids: check every one shown.
    assert len(shown) == 25
    for task_id, values in shown.items():
        i = batch.index(task_id)
        assert values == (str(i), "even" if i % 2 == 0 else "odd")
    await eventually(lambda: address(user) == "/tasks?namespace=tests&columns=i%2Cparity")


async def test_columns_come_back_from_the_url(user: User, batch: list[str]) -> None:
    await user.open("/tasks?namespace=stardag.demo&columns=sensor")

    rows = await rows_of(user, 7)

    assert {row["param.sensor"] for row in rows} == {"north", "south", "east", "—"}


async def test_a_row_click_opens_the_task(user: User, registry: Registry) -> None:
    await user.open("/tasks?name=report")
    (row,) = await rows_of(user, 1)

    user.find(ui.table).trigger("rowClick", [{}, row, 0])

    await user.should_see("stardag.demo.report")
    await user.should_see(registry.root_task_id)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("status=BROKEN", "unknown status 'BROKEN': one of PENDING, RUNNING"),
        ("param.i=%7B%22a%22%3A1%7D", "parameter value '{\"a\":1}' is not a string"),
        ("param.a..b=1", "'a..b' is not a parameter path"),
        ("colour=red", "unknown filter 'colour'"),
        ("size=7", "page size '7' is not one of 10, 25, 50, 100"),
    ],
)
async def test_bad_input_in_the_url_is_explained(
    user: User, batch: list[str], query: str, message: str
) -> None:
    await user.open(f"/tasks?{query}")

    await user.should_see(message)
    await rows_of(user, 25)  # the rest of the view still works


async def test_a_build_id_the_registry_refuses_is_explained(user: User, batch: list[str]) -> None:
    await user.open("/tasks?build=not-a-build")

    await user.should_see("The registry refused this view")


def table_rows(user: User) -> list[dict[str, Any]]:
    """The rows of the page's table now."""
    table = user.find(ui.table).elements.pop()
    assert isinstance(table, ui.table)
    return list(table.rows)


async def parameters_offered(user: User) -> None:
    """Wait until the filter bar offers the parameter keys, which the page asks the registry
    for beside the rows: `choose` sets a value the way a click on an option does, and a
    selector keeps no value it does not offer (the key was None, and no value suggested)."""
    await eventually(lambda: "parity (parameter)" in select_options(user, "filter-key"))


def select_options(user: User, marker: str) -> list[str]:
    """The option labels the selector marked ``marker`` offers now."""
    element = user.find(marker=marker).elements.pop()
    assert isinstance(element, ui.select)
    options = element.options
    return list(options.values() if isinstance(options, dict) else options)
