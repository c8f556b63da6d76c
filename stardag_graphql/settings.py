"""The registry server's configuration, read once from `STARDAG_*` environment variables."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url


def default_database_url() -> str:
    """The embedded SQLite database: one file under `~/.stardag/`."""
    return f"sqlite+aiosqlite:///{Path.home() / '.stardag' / 'registry.db'}"


def default_signing_key_file() -> Path:
    """Where the registry keeps the private key that signs its tokens."""
    return Path.home() / ".stardag" / "registry-signing-key.pem"


class Settings(BaseSettings):
    """Server settings; the database URL's password never appears in a repr.

    Setting `oidc_issuer` (with `oidc_client_id`) switches on server mode: people sign in
    through that OpenID Connect provider, every request is authenticated, and the registry
    may listen beyond loopback. Without it the registry runs in local mode.
    """

    model_config = SettingsConfigDict(env_prefix="STARDAG_", extra="ignore")

    database_url: str = Field(default_factory=default_database_url, repr=False)
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Origins of browser pages (such as the GUI) allowed on the websocket.",
    )
    oidc_issuer: str | None = Field(
        default=None, description="The OpenID Connect provider's issuer URL (server mode)."
    )
    oidc_client_id: str | None = Field(
        default=None, description="The client id that the CLI and GUI sign in with."
    )
    oidc_audience: str | None = Field(
        default=None,
        description="The audience the provider's tokens must carry (default: the client id).",
    )
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        description="The URL clients reach the registry at; the issuer of its tokens.",
    )
    signing_key_file: Path = Field(
        default_factory=default_signing_key_file,
        description="The registry's token signing key (EC P-256 PEM), created if missing.",
    )
    token_ttl_seconds: int = Field(
        default=900, ge=60, le=86_400, description="How long a registry token lives."
    )
    rate_limit_per_minute: int = Field(
        default=1200,
        ge=1,
        description="Requests a minute allowed per API key, per user and per address "
        "signing in; beyond it the answer is 429 with Retry-After.",
    )

    @model_validator(mode="after")
    def _server_mode_is_whole(self) -> "Settings":
        if self.oidc_issuer is not None and not self.oidc_client_id:
            raise ValueError(
                "STARDAG_OIDC_ISSUER is set but STARDAG_OIDC_CLIENT_ID is not: server mode "
                "needs both (and optionally STARDAG_OIDC_AUDIENCE)"
            )
        return self

    @property
    def server_mode(self) -> bool:
        """Whether people sign in through an OpenID Connect provider (else: local mode)."""
        return self.oidc_issuer is not None

    @property
    def audience(self) -> str | None:
        """The audience the provider's tokens must carry."""
        return self.oidc_audience or self.oidc_client_id

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        yield from super().__repr_args__()
        yield "database_url", masked_url(self.database_url)


def masked_url(url: str) -> str:
    """A database URL with its password replaced by `***`, fit for reprs and logs."""
    return make_url(url).render_as_string(hide_password=True)
