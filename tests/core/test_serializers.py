"""Serializers: chosen by type when a class is defined, and every one round-trips on a local
directory, in memory and on S3."""

import datetime
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import numpy as np
import pandas as pd
import pytest
from pydantic import BaseModel

import stardag_core as sd


class Point(BaseModel):
    x: float
    y: float


class Opaque:
    """A plain class pydantic cannot write as JSON: stored with pickle."""

    def __init__(self, payload: object) -> None:
        self.payload = payload

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Opaque) and other.payload == self.payload

    def __hash__(self) -> int:
        return hash(self.payload)


def frames_equal(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    pd.testing.assert_frame_equal(a, b)
    return True


def series_equal(a: pd.Series, b: pd.Series) -> bool:
    pd.testing.assert_series_equal(a, b)
    return True


def arrays_equal(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(a.dtype == b.dtype and np.array_equal(a, b))


def equal(a: object, b: object) -> bool:
    return a == b


CASES: list[tuple[str, Any, Any, type[sd.Serializer[Any]], str, Callable[[Any, Any], bool]]] = [
    ("int", int, 42, sd.JSON, "json", equal),
    ("nested", dict[str, list[Point]], {"a": [Point(x=1, y=2)]}, sd.JSON, "json", equal),
    (
        "set-tuple-date",
        tuple[set[int], datetime.date],
        ({3, 1}, datetime.date(2024, 2, 29)),
        sd.JSON,
        "json",
        equal,
    ),
    ("text", str, "naïve ☃\nline two", sd.Text, "txt", equal),
    ("bytes", bytes, b"\x00\xff binary", sd.Bytes, "bin", equal),
    (
        "dataframe",
        pd.DataFrame,
        pd.DataFrame({"a": [1, 2], "b": ["x", "y"]}),
        sd.Parquet,
        "parquet",
        frames_equal,
    ),
    ("series", pd.Series, pd.Series([1.5, 2.5], name="price"), sd.Parquet, "parquet", series_equal),
    ("unnamed-series", pd.Series, pd.Series([1, 2]), sd.Parquet, "parquet", series_equal),
    (
        "ndarray",
        np.ndarray,
        np.arange(6, dtype=np.int16).reshape(2, 3),
        sd.Numpy,
        "npy",
        arrays_equal,
    ),
    ("pickle", Opaque, Opaque(1 + 2j), sd.Pickle, "pkl", equal),
    ("any", Any, {"anything": (1, 2)}, sd.Pickle, "pkl", equal),
    (
        "gzip-json",
        Annotated[list[int], sd.GZip(sd.JSON())],
        list(range(100)),
        sd.GZip,
        "json.gz",
        equal,
    ),
    ("gzip-pickle", Annotated[Opaque, sd.GZip(sd.Pickle())], Opaque(3j), sd.GZip, "pkl.gz", equal),
]


@pytest.mark.parametrize(
    ("tp", "value", "kind", "extension", "same"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_round_trip_on_every_filesystem(
    any_root: str,
    tp: Any,
    value: Any,
    kind: type[sd.Serializer[Any]],
    extension: str,
    same: Callable[[Any, Any], bool],
) -> None:
    serializer = sd.serializer_for(tp)
    assert isinstance(serializer, kind)
    assert serializer.extension == extension
    target = sd.FileTarget(f"{any_root}/values/value.{extension}", serializer)
    assert not target.exists()
    target.save(value)
    assert target.exists()
    assert same(target.load(), value)


def test_auto_task_stores_with_the_serializer_of_its_type(any_root: str) -> None:
    class Frame(sd.AutoTask[pd.DataFrame]):
        rows: int

        def run(self) -> None:
            self.output().save(pd.DataFrame({"i": range(self.rows)}))

    task = Frame(rows=3)
    assert (
        task.output().uri
        == f"{any_root}/Frame/{str(task.id)[:2]}/{str(task.id)[2:4]}/{task.id}.parquet"
    )
    sd.build(task).raise_on_failure()
    assert list(task.load()["i"]) == [0, 1, 2]


def test_unsupported_type_fails_at_class_definition_naming_type_and_fix() -> None:
    with pytest.raises(sd.TaskDefinitionError) as caught:

        class Stream(sd.AutoTask[Iterator[int]]):
            pass

    message = str(caught.value)
    assert "Stream" in message
    assert "Iterator[int]" in message
    assert "Annotated[" in message


def test_auto_task_without_a_type_fails_at_class_definition() -> None:
    with pytest.raises(sd.TaskDefinitionError, match="AutoTask"):

        class Untyped(sd.AutoTask):  # type: ignore[type-arg]
            pass


def test_explicit_serializer_wins_over_the_implicit_choice() -> None:
    assert isinstance(sd.serializer_for(Annotated[dict[str, int], sd.Pickle()]), sd.Pickle)
    assert isinstance(sd.serializer_for(str), sd.Text)
    assert sd.serializer_for(Annotated[str, sd.JSON()]) == sd.JSON(str)


def test_serializers_compose_and_carry_their_extension() -> None:
    nested = sd.GZip(sd.GZip(sd.Text()))
    assert nested.extension == "txt.gz.gz"
    assert (
        repr(sd.serializer_for(Annotated[list[int], sd.GZip(sd.JSON())])) == "GZip(JSON(list[int]))"
    )


def test_corrupt_file_gives_a_clear_error(local_root: str) -> None:
    target = sd.FileTarget(f"{local_root}/broken.json", sd.JSON(list[int]))
    with target.open("w") as file:
        file.write("[1, 2,")
    with pytest.raises(
        sd.SerializationError, match=r"(?s)could not load .*broken.json.*target.remove\(\)"
    ):
        target.load()


def test_value_of_the_wrong_type_is_not_written(local_root: str) -> None:
    target = sd.FileTarget(f"{local_root}/wrong.npy", sd.Numpy())
    with pytest.raises(sd.SerializationError, match="could not write"):
        target.save(np.array([object()]))
    assert not target.exists()
