"""Targets: all-or-nothing writes, write-once commits, directories, batched existence."""

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

import stardag_core as sd
from tests.conftest import S3_BUCKET


class Boom(Exception):
    pass


def write_then_fail(target: sd.FileTarget[str]) -> None:
    with target.open("w") as file:
        file.write("half of the")
        raise Boom


def write_shard_then_fail(directory: sd.DirectoryTarget) -> None:
    with directory.writing():
        directory.file("part-0.json", sd.JSON()).save([0])
        raise Boom


def test_exception_inside_a_write_leaves_nothing(any_root: str) -> None:
    target = sd.FileTarget(f"{any_root}/partial.txt", sd.Text())
    with pytest.raises(Boom):
        write_then_fail(target)
    assert not target.exists()
    assert target.fs.find(any_root) == []  # no temporary file left behind either
    target.save("whole")
    assert target.load() == "whole"


def test_failing_serializer_leaves_nothing(any_root: str) -> None:
    target = sd.FileTarget(f"{any_root}/value.json", sd.JSON(int))
    with pytest.raises(sd.SerializationError):
        target.save("not an int")
    assert not target.exists()


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_process_killed_mid_write_leaves_no_file(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if kind == "s3":
        request.getfixturevalue("s3_endpoint")
        uri = f"s3://{S3_BUCKET}/{uuid.uuid4().hex}/killed.bin"
    else:
        uri = str(tmp_path / "killed.bin")
    script = textwrap.dedent(
        f"""
        import sys, time
        import stardag_core as sd
        with sd.FileTarget({uri!r}).open("wb") as file:
            file.write(b"x" * 1_000_000)
            print("writing", flush=True)
            time.sleep(60)
        """
    )
    writer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "writing"
        writer.send_signal(signal.SIGKILL)
        assert writer.wait(timeout=30) == -signal.SIGKILL
    finally:
        writer.kill()
    target = sd.FileTarget(uri, sd.Bytes())
    assert not target.exists()
    target.save(b"complete")
    assert target.load() == b"complete"


def test_targets_are_write_once(any_root: str) -> None:
    target = sd.FileTarget(f"{any_root}/once.txt", sd.Text())
    target.save("first")
    with pytest.raises(sd.TargetExistsError, match=r"already exists .*target.remove\(\)"):
        target.save("second")
    assert target.load() == "first"
    target.remove()
    target.save("second")
    assert target.load() == "second"


def test_overwrite_when_asked(any_root: str) -> None:
    target = sd.FileTarget(f"{any_root}/mutable.txt", sd.Text(), write_once=False)
    target.save("first")
    target.save("second")
    assert target.load() == "second"


def test_concurrent_writers_commit_exactly_once(any_root: str) -> None:
    first = sd.FileTarget(f"{any_root}/race.txt", sd.Text()).open("w")
    second = sd.FileTarget(f"{any_root}/race.txt", sd.Text()).open("w")
    first.__enter__().write("one")
    second.__enter__().write("two")
    first.__exit__(None, None, None)
    with pytest.raises(sd.TargetExistsError):
        second.__exit__(None, None, None)
    assert sd.FileTarget(f"{any_root}/race.txt", sd.Text()).load() == "one"


def test_local_write_is_durable_and_atomic(local_root: str) -> None:
    target = sd.FileTarget(f"{local_root}/deep/dirs/file.json", sd.JSON(dict[str, int]))
    target.save({"a": 1})
    assert Path(target.path).read_text() == '{"a":1}'
    assert os.listdir(Path(target.path).parent) == ["file.json"]


def test_reading_a_missing_target_says_to_build_it(any_root: str) -> None:
    with pytest.raises(sd.TargetError, match="does not exist: build the task first"):
        sd.FileTarget(f"{any_root}/missing.json", sd.JSON()).load()


def test_target_without_serializer_explains(any_root: str) -> None:
    with pytest.raises(sd.TargetError, match="has no serializer"):
        sd.FileTarget(f"{any_root}/raw").load()


def test_unknown_protocol_is_a_clear_error() -> None:
    with pytest.raises(sd.TargetError, match="unknown filesystem protocol 'nosuch'"):
        sd.FileTarget("nosuch://bucket/file")


def test_directory_target_is_complete_only_when_committed(any_root: str) -> None:
    directory = sd.DirectoryTarget(f"{any_root}/shards")
    with pytest.raises(Boom):
        write_shard_then_fail(directory)
    assert not directory.exists()
    assert directory.listdir() == ["part-0.json"]
    with directory.writing():
        directory.file("part-0.json", sd.JSON()).save([0, 0])
        directory.file("nested/part-1.txt", sd.Text()).save("one")
    assert directory.exists()
    assert directory.listdir() == ["nested/part-1.txt", "part-0.json"]
    assert directory.file("part-0.json", sd.JSON(list[int])).load() == [0, 0]
    with pytest.raises(sd.TargetExistsError):
        directory.commit()
    directory.remove()
    assert not directory.exists()


def test_exists_many_checks_every_kind_of_target(any_root: str) -> None:
    files = [sd.FileTarget(f"{any_root}/many/{i}.txt", sd.Text()) for i in range(20)]
    for target in files[::3]:
        target.save("x")
    directory = sd.DirectoryTarget(f"{any_root}/many/dir")
    with directory.writing():
        directory.file("a.txt", sd.Text()).save("a")

    class Custom:
        def exists(self) -> bool:
            return True

    targets: list[sd.Target] = [*files, directory, Custom()]
    expected = [i % 3 == 0 for i in range(20)] + [True, True]
    assert sd.exists_many(targets) == expected
    assert asyncio.run(sd.exists_many_async(targets)) == expected


async def test_exists_many_blocking_form_works_inside_an_event_loop(local_root: str) -> None:
    target = sd.FileTarget(f"{local_root}/x.txt", sd.Text())
    target.save("x")
    assert sd.exists_many([target]) == [True]
