"""Settings come from `STARDAG_*` variables and never show a database password."""

from pathlib import Path

import pytest

from stardag_graphql.settings import Settings


def test_the_default_database_is_sqlite_under_the_home_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("STARDAG_DATABASE_URL", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))

    assert Settings().database_url == f"sqlite+aiosqlite:///{tmp_path}/.stardag/registry.db"


def test_the_database_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STARDAG_DATABASE_URL", "postgresql+psycopg://registry@db/stardag")

    assert Settings().database_url == "postgresql+psycopg://registry@db/stardag"


def test_repr_hides_the_database_password() -> None:
    settings = Settings(database_url="postgresql+psycopg://registry:s3cr3t@db:5432/stardag")

    assert "s3cr3t" not in repr(settings)
    assert "s3cr3t" not in str(settings)
    assert "postgresql+psycopg://registry:***@db:5432/stardag" in repr(settings)
