"""Golden task ids: the same values the original stardag computes for the same tasks."""

import datetime
import enum
import json
import uuid
from typing import Annotated, Literal
from uuid import UUID

import annotated_types
import pytest
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, field_serializer

import stardag_core as sd
from stardag_core.task_id import TASK_ID_NAMESPACE, task_id
from stardag_core.tasks import pydantic_id_payload
from tests.core.examples.ml import Mixed, Train, combine


@sd.task
def add(a: int, b: int) -> int:
    return a + b


@sd.task
def get_range(limit: int) -> list[int]:
    return list(range(limit))


@sd.task
def get_sum(integers: sd.Depends[list[int]]) -> int:
    return sum(integers)


def mixed(**overrides: object) -> Mixed:
    params: dict[str, object] = {
        "text": "naïve ☃",
        "when": datetime.date(2024, 1, 31),
        "options": {"z": 1, "a": None},
    }
    return Mixed.model_validate({**params, **overrides})


def test_add_has_the_known_id() -> None:
    assert add(a=1, b=2).id == UUID("fa9b74b1-1cde-5676-8650-dbcf755a2699")


def test_id_is_uuid5_of_the_canonical_payload() -> None:
    payload = {"__namespace": "", "__name": "add", "version": "", "b": 2, "a": 1}
    assert task_id(payload) == add(a=1, b=2).id
    assert UUID("9ca26b27-f7ee-4044-8b3c-e335dc5778dc") == TASK_ID_NAMESPACE


def test_nested_task_contributes_only_its_id() -> None:
    total = get_sum(integers=get_range(limit=4))
    assert get_range(limit=4).id == UUID("00665fbb-0132-5628-94c0-8c6f97b66ad0")
    assert total.id == UUID("f23b1722-2909-5fb7-89bf-dcdd0b37e930")
    assert total.id_payload()["integers"] == {"id": "00665fbb-0132-5628-94c0-8c6f97b66ad0"}


def test_namespace_version_and_set_parameters() -> None:
    train = Train(learning_rate=0.1, layers=[64, 32], tags={"b", "c", "a"})
    assert train.id == UUID("53b55e68-08a5-504e-9b90-fa49fcc1701f")
    assert train.id_payload()["tags"] == ["a", "b", "c"]


def test_set_order_never_changes_the_id() -> None:
    orders = [["a", "b", "c"], ["c", "b", "a"], ["b", "a", "c"]]
    ids = {Train(learning_rate=0.1, layers=[], tags=set(order)).id for order in orders}
    assert len(ids) == 1


def test_sets_of_mixed_types_and_nested_sets_order_canonically() -> None:
    class Grid(sd.AutoTask[int]):
        values: frozenset[int | str]
        nested: dict[str, list[frozenset[int]]]

    one = Grid(values=frozenset([3, "a", 1]), nested={"k": [frozenset([3, 1, 2])]})
    other = Grid(values=frozenset(["a", 1, 3]), nested={"k": [frozenset([2, 3, 1])]})
    assert one.id == other.id
    assert one.id_payload()["values"] == ["a", 1, 3]  # mixed types sort by JSON text
    assert one.id_payload()["nested"] == {"k": [[1, 2, 3]]}


def test_dates_unicode_and_optional_values() -> None:
    assert mixed().id == UUID("7a4aa12c-2351-5219-9865-1b3a28b5d53a")


def test_hash_excluded_parameter_is_not_in_the_id() -> None:
    assert mixed(threads=16).id == mixed().id
    assert "threads" not in mixed(threads=16).id_payload()
    assert mixed(threads=16).threads == 16


def test_compat_default_keeps_old_ids_and_new_values_change_them() -> None:
    assert "added" not in mixed().id_payload()
    assert mixed(added="new").id == UUID("1713c9a5-8fd9-5741-b07c-a12a4d9e6dde")


def test_adding_a_compat_default_parameter_keeps_every_existing_id() -> None:
    class Before(sd.AutoTask[int], name="Evolving"):
        size: int

    before = Before(size=3).id

    class After(sd.AutoTask[int], name="Evolving"):
        size: int
        mode: str = "fast"  # plain default: changes the id
        seed: sd.TaskLoads[int] | None = None

    class Compatible(sd.AutoTask[int], name="Evolving"):
        size: int
        mode: Annotated[str, sd.Param(compat_default="fast")] = "fast"

    assert After(size=3).id != before
    assert Compatible(size=3).id == before
    assert Compatible(size=3, mode="slow").id != before


def test_dependencies_given_by_decorator_compose_into_the_known_id() -> None:
    first = Train(learning_rate=0.1, layers=[64, 32], tags={"b", "c", "a"})
    second = Train(learning_rate=0.2, layers=[], tags=set())
    assert combine(first=first, second=second).id == UUID("e460e10b-b537-5129-a764-f3a49117056d")


def test_id_is_computed_once_per_instance() -> None:
    total = get_sum(integers=get_range(limit=4))
    assert total.id is total.id
    assert "id" in total.__dict__


def test_version_changes_the_id() -> None:
    class Old(sd.AutoTask[int], name="Versioned", version="1"):
        x: int

    class New(sd.AutoTask[int], name="Versioned", version="2"):
        x: int

    assert Old(x=1).id != New(x=1).id


def test_output_path_layout_is_pinned(local_root: str) -> None:
    train = Train(learning_rate=0.1, layers=[64, 32], tags={"b", "c", "a"})
    assert train.output().uri == (
        f"{local_root}/examples/ml/Train/v2/53/b5/53b55e68-08a5-504e-9b90-fa49fcc1701f.json"
    )
    assert add(a=1, b=2).output().uri == (
        f"{local_root}/add/fa/9b/fa9b74b1-1cde-5676-8650-dbcf755a2699.json"
    )


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Window(BaseModel):
    start: datetime.date
    tags: frozenset[str]


class Varied(sd.AutoTask[int]):
    rate: float
    maybe: int | None = None
    mode: Literal["fast", "slow"] = "fast"
    colour: Colour = Colour.RED
    window: Window | None = None
    weights: dict[str, list[float]] = Field(default_factory=dict)
    bounded: Annotated[int, annotated_types.Gt(0)] = 1
    shouted: Annotated[str, PlainSerializer(str.upper)] = "quiet"
    wait: datetime.timedelta = datetime.timedelta(seconds=90)
    upstream: sd.TaskLoads[int] | None = None
    many: tuple[sd.TaskLoads[int], ...] = ()
    threads: Annotated[int, sd.Param(hash_exclude=True)] = 1
    later: Annotated[bool, sd.Param(compat_default=False)] = False


class CustomSerialized(sd.AutoTask[int]):
    model_config = ConfigDict(ser_json_timedelta="float")

    wait: datetime.timedelta
    name_: str

    @field_serializer("name_")
    def _shout(self, value: str) -> str:
        return value.upper()


VARIED = [
    Varied(rate=1),  # an int given for a float
    Varied(rate=float("inf")),
    Varied(rate=float("nan"), maybe=3, mode="slow", colour=Colour.BLUE),
    Varied(rate=0.5, window=Window(start=datetime.date(2024, 5, 1), tags=frozenset("zyx"))),
    Varied(rate=0.5, weights={"b": [1.5], "a": []}, bounded=7, shouted="loud", later=True),
    Varied(rate=0.5, upstream=add(a=1, b=2), many=(add(a=2, b=3), add(a=1, b=2)), threads=9),
    CustomSerialized(wait=datetime.timedelta(hours=1), name_="x"),
    Train(learning_rate=0.1, layers=[64, 32], tags={"b", "c", "a"}),
    mixed(added="new"),
    get_sum(integers=get_range(limit=4)),
]


# Ids without reprs: a set's repr changes with the hash seed, and xdist's workers must agree.
@pytest.mark.parametrize("task", VARIED, ids=lambda task: f"{type(task).__name__}-{task.id}")
def test_fast_id_payload_equals_pydantics(task: sd.Task) -> None:
    assert task.id_payload() == pydantic_id_payload(task)
    assert task.id == task_id(pydantic_id_payload(task))


@pytest.mark.parametrize("payload", [{}, {"a": 1}, {"text": "naïve ☃", "nested": {"id": "x"}}])
def test_task_id_is_uuid5_of_the_canonical_json(payload: dict[str, object]) -> None:
    expected = uuid.uuid5(
        TASK_ID_NAMESPACE, json.dumps(payload, sort_keys=True, separators=(",", ":"))
    )
    computed = task_id(payload)
    assert computed == expected
    assert (str(computed), computed.version, computed.variant) == (str(expected), 5, uuid.RFC_4122)
    assert hash(computed) == hash(expected)
