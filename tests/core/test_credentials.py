"""Credentials are kept in owner-only files, cached until shortly before they expire,
renewed once when many ask at the same time, and shown nowhere."""

import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

import stardag_core as sd
from stardag_core.credentials import (
    ApiKey,
    CredentialStore,
    LoginRecord,
    NoCredential,
    RegistryToken,
    SignedIn,
)

URL = "http://127.0.0.1:8000"
REFRESH = "refresh-SECRET-0"


def record(refresh: str | None = REFRESH) -> LoginRecord:
    return LoginRecord(
        registry_url=URL,
        issuer="http://127.0.0.1:9000",
        client_id="stardag-cli",
        token_endpoint="http://127.0.0.1:9000/token",
        scopes="openid email offline_access",
        refresh_token=SecretStr(refresh) if refresh else None,
        email="alice@example.com",
        signed_in_at=datetime.now(UTC),
    )


def token(secret: str, seconds: float, organization: str = "acme") -> RegistryToken:
    expires_at = datetime.now(UTC) + timedelta(seconds=seconds)
    return RegistryToken(
        access_token=SecretStr(secret), expires_at=expires_at, organization=organization
    )


class Renewals:
    """A renewal that counts its calls and rotates the refresh token, like a provider."""

    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()

    def __call__(
        self, login: LoginRecord, organization: str | None
    ) -> tuple[LoginRecord, RegistryToken]:
        with self.lock:
            self.count += 1
            count = self.count
        rotated = login.model_copy(update={"refresh_token": SecretStr(f"refresh-SECRET-{count}")})
        return rotated, token(f"registry-SECRET-{count}", 900, organization or "acme")


def test_files_are_the_owners_only_and_hold_no_secret_in_any_repr(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path / "credentials")
    store.save_login(record())
    store.save_token(URL, "acme", token("registry-SECRET", 900))
    assert stat.S_IMODE((tmp_path / "credentials").stat().st_mode) == 0o700
    files = list((tmp_path / "credentials").glob("*.json"))
    assert len(files) == 2
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in files)
    loaded = store.login(URL)
    cached = store.token(URL, "acme")
    assert loaded is not None
    assert cached is not None
    assert loaded.refresh_token is not None
    assert loaded.refresh_token.get_secret_value() == REFRESH
    assert cached.access_token.get_secret_value() == "registry-SECRET"
    for shown in (repr(loaded), str(loaded), repr(cached), repr(store)):
        assert "SECRET" not in shown
    credential = SignedIn(store, URL, "acme", Renewals())
    assert "SECRET" not in repr(credential)
    assert "SECRET" not in repr(ApiKey(SecretStr("sd_SECRET")))


def test_a_token_is_cached_until_a_minute_before_it_expires(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path)
    store.save_token(URL, "acme", token("soon", 30))
    store.save_token(URL, None, token("later", 600))
    assert store.token(URL, "acme") is None
    first = store.token(URL, None)
    assert first is not None
    assert first.access_token.get_secret_value() == "later"


def test_an_expired_token_is_renewed_once_for_many_threads(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path)
    store.save_login(record())
    store.save_token(URL, "acme", token("expired", -5))
    renewals = Renewals()
    credentials = [SignedIn(store, URL, "acme", renewals) for _ in range(2)]
    bearers: list[str] = []
    threads = [
        threading.Thread(target=lambda c=credential: bearers.append(c.bearer()))
        for credential in credentials
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert bearers == ["registry-SECRET-1"] * 8
    assert renewals.count == 1
    rotated = store.login(URL)
    assert rotated is not None
    assert rotated.refresh_token is not None
    assert rotated.refresh_token.get_secret_value() == "refresh-SECRET-1"
    credentials[0].refresh()
    assert credentials[1].bearer() == "registry-SECRET-2"


def test_without_a_sign_in_the_credential_says_to_log_in(tmp_path: Path) -> None:
    credential = SignedIn(CredentialStore(tmp_path), URL, None, Renewals())
    with pytest.raises(sd.ConfigError, match=r"not signed in .* `stardag auth login`"):
        credential.bearer()


def test_forgetting_a_registry_removes_only_its_files(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path)
    store.save_login(record())
    store.save_token(URL, "acme", token("t", 900))
    other = record().model_copy(update={"registry_url": "http://127.0.0.1:8001"})
    store.save_login(other)
    assert store.forget(URL)
    assert store.login(URL) is None
    assert store.token(URL, "acme") is None
    assert store.login("http://127.0.0.1:8001") is not None
    assert not store.forget(URL)


def test_a_damaged_file_counts_as_no_credential(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path)
    store.save_login(record())
    (path,) = tmp_path.glob("*.login.json")
    path.write_text("{not json")
    assert store.login(URL) is None
    assert NoCredential().bearer() is None
