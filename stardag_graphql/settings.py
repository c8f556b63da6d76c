"""The registry server's configuration, read once from `STARDAG_*` environment variables."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url


def default_database_url() -> str:
    """The embedded SQLite database: one file under `~/.stardag/`."""
    return f"sqlite+aiosqlite:///{Path.home() / '.stardag' / 'registry.db'}"


class Settings(BaseSettings):
    """Server settings; the database URL's password never appears in a repr."""

    model_config = SettingsConfigDict(env_prefix="STARDAG_", extra="ignore")

    database_url: str = Field(default_factory=default_database_url, repr=False)
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Origins of browser pages (such as the GUI) allowed on the websocket.",
    )

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        yield from super().__repr_args__()
        yield "database_url", masked_url(self.database_url)


def masked_url(url: str) -> str:
    """A database URL with its password replaced by `***`, fit for reprs and logs."""
    return make_url(url).render_as_string(hide_password=True)
