"""``stardag registry``, ``stardag profile`` and ``stardag auth``: where stardag works, as whom.

Commands that talk to a registry need the ``registry`` extra (gql, httpx); they import its
client only when they run, so the rest of the command line works without it.
"""

import functools
import os
import sys
import webbrowser
from collections.abc import Callable, Collection, Mapping, MutableMapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import tomlkit
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from stardag_core.credentials import CredentialStore, LoginRecord, RegistryToken, SignedIn
from stardag_core.exceptions import ConfigError, StardagError
from stardag_core.profiles import (
    CONFIG_FILE,
    PROJECT_DIRECTORY,
    URL_VARIABLE,
    ConfigFile,
    Configuration,
    DefaultSection,
    Profile,
    RegistryConfig,
    RegistryEntry,
    registry_url,
    stardag_home,
)

if TYPE_CHECKING:
    from stardag_core.client import RegistryClient
    from stardag_core.login import DeviceCode

UNFOLDED_WIDTH = 10_000
"""The width lines may take in a pipe or a file: their whole length."""


def output_console(*, stderr: bool = False) -> Console:
    """A console for the command line's output. In a terminal, rich fits it to the window;
    into a pipe or a file, where rich would fold every line at 80 columns, lines keep their
    whole length, so that a task id, a path or a table's row is one line that `grep` finds."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else UNFOLDED_WIDTH)


console = output_console()
errors = output_console(stderr=True)

P = ParamSpec("P")
R = TypeVar("R")

registry_app = typer.Typer(help="The registries stardag knows, by name.", no_args_is_help=True)
profile_app = typer.Typer(
    help="Profiles: a registry, an organization and a workspace, by name.", no_args_is_help=True
)
auth_app = typer.Typer(help="Signing in to a registry.", no_args_is_help=True)

ProjectOption = Annotated[
    bool,
    typer.Option(
        "--project",
        help=f"Write the project's {PROJECT_DIRECTORY}/{CONFIG_FILE} (the nearest one, else "
        "one in the working directory) instead of the user's.",
    ),
]
RegistryOption = Annotated[
    str | None,
    typer.Option("--registry", "-r", help="A registry by name (default: the active profile's)."),
]


def friendly(command: Callable[P, R]) -> Callable[P, R]:
    """Show stardag's own errors as one line on standard error (exit code 1), no traceback."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except StardagError as error:
            errors.print(f"[red]error:[/] {escape(str(error))}", highlight=False)
            raise typer.Exit(1) from None

    return run


def open_client(config: RegistryConfig | None = None) -> "RegistryClient":
    """A client of ``config`` (default: the configured registry)."""
    try:
        # The GraphQL client is the optional `registry` extra.
        from stardag_core.client import open_client as open_registry_client
    except ImportError as error:
        raise ConfigError(
            f"talking to a registry needs the registry extra ({error}): "
            "pip install 'stardag[registry]'"
        ) from error
    return open_registry_client(config)


def credential_store() -> CredentialStore:
    """The user's credential files."""
    return CredentialStore(stardag_home() / "credentials")


# stardag registry ...


@registry_app.command("add")
@friendly
def registry_add(
    name: Annotated[str, typer.Argument(help="A name for the registry, e.g. 'central'.")],
    url: Annotated[str, typer.Option(help="Where it answers, e.g. http://127.0.0.1:8000.")],
    project: ProjectOption = False,
) -> None:
    """Add (or change) a registry."""
    try:
        entry = RegistryEntry(url=registry_url(url))
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--url") from None
    path = _target_file(project)
    file = ConfigFile.read(path)
    verb = "Changed" if name in file.registry else "Added"
    write_config(path, file, registry={**file.registry, name: entry})
    console.print(f"{verb} registry {name!r} ({entry.url}) in {path}", highlight=False)


@registry_app.command("list")
@friendly
def registry_list() -> None:
    """List the registries; * marks the active profile's."""
    configuration = Configuration.load()
    active = configuration.resolve()
    output = table("", "name", "url", "defined in")
    for name, named in configuration.registries().items():
        mark = "*" if active is not None and active.registry == name else ""
        output.add_row(mark, name, named.value.url, f"{named.path} ({named.scope})")
    console.print(output)
    if not configuration.registries():
        console.print("No registries yet: `stardag registry add NAME --url URL`.")


# stardag profile ...


@profile_app.command("add")
@friendly
def profile_add(
    name: Annotated[str, typer.Argument(help="A name for the profile, e.g. 'prod'.")],
    registry: Annotated[str, typer.Option("--registry", "-r", help="The registry, by name.")],
    organization: Annotated[
        str | None, typer.Option("--organization", "-o", help="The organization's slug.")
    ] = None,
    workspace: Annotated[
        str | None, typer.Option("--workspace", "-w", help="The workspace's slug.")
    ] = None,
    use: Annotated[bool, typer.Option("--use", help="Make it the default profile.")] = False,
    project: ProjectOption = False,
) -> None:
    """Add (or change) a profile; the first profile becomes the default."""
    configuration = Configuration.load()
    configuration.registry(registry, f"profile {name!r}")
    path = _target_file(project)
    file = ConfigFile.read(path)
    profile = Profile(registry=registry, organization=organization, workspace=workspace)
    verb = "Changed" if name in file.profile else "Added"
    first = not configuration.profiles()
    default = DefaultSection(profile=name) if use or first else file.default
    write_config(path, file, profile={**file.profile, name: profile}, default=default)
    console.print(f"{verb} profile {name!r} in {path}", highlight=False)
    if default.profile == name:
        console.print(f"{name!r} is the default profile.")
        _warn_if_shadowed(Configuration.load(), name)


@profile_app.command("list")
@friendly
def profile_list() -> None:
    """List the profiles; * marks the active one, and the line below says why it is active."""
    configuration = Configuration.load()
    active = configuration.active_profile()
    output = table("", "name", "registry", "organization", "workspace", "defined in")
    for name, named in configuration.profiles().items():
        profile = named.value
        output.add_row(
            "*" if active is not None and active.profile.name == name else "",
            name,
            profile.registry,
            profile.organization or "",
            profile.workspace or "",
            f"{named.path} ({named.scope})",
        )
    console.print(output)
    if active is not None:
        console.print(f"Active: {active.profile.name!r}, because {active.reason}.")
    elif configuration.profiles():
        console.print("No profile is active: choose one with `stardag profile use NAME`.")
    else:
        console.print(
            "No profiles yet: `stardag auth login` creates one, or `stardag profile add`."
        )
    overrides = [
        variable
        for variable in (URL_VARIABLE, "STARDAG_ORGANIZATION", "STARDAG_WORKSPACE")
        if os.environ.get(variable)
    ]
    if overrides:
        console.print(f"The environment overrides the profile: {', '.join(overrides)}.")


@profile_app.command("use")
@friendly
def profile_use(
    name: Annotated[str, typer.Argument(help="The profile to use by default.")],
    project: ProjectOption = False,
) -> None:
    """Make a profile the default."""
    configuration = Configuration.load()
    if name not in configuration.profiles():
        known = ", ".join(configuration.profiles()) or "none yet"
        raise ConfigError(
            f"unknown profile {name!r}; known profiles: {known}. Add it with "
            f"`stardag profile add {name} --registry NAME`"
        )
    path = _target_file(project)
    write_config(path, ConfigFile.read(path), default=DefaultSection(profile=name))
    console.print(f"{name!r} is the default profile (in {path}).", highlight=False)
    _warn_if_shadowed(Configuration.load(), name)


def _warn_if_shadowed(configuration: Configuration, name: str) -> None:
    active = configuration.active_profile()
    if active is not None and active.profile.name != name:
        errors.print(
            f"[yellow]note:[/] {active.profile.name!r} stays active, because {active.reason}.",
            highlight=False,
        )


def _target_file(project: bool) -> Path:
    if not project:
        return stardag_home() / CONFIG_FILE
    found = Configuration.load().project_path
    return found or Path.cwd() / PROJECT_DIRECTORY / CONFIG_FILE


def write_config(path: Path, file: ConfigFile, **changes: object) -> None:
    """Write ``file`` with ``changes`` (its tables, by name) to the configuration file at
    ``path`` atomically, keeping the comments and layout of what the change leaves alone:
    entries edited in place, entries removed, new entries added at the end."""
    changed = ConfigFile.model_validate({**dict(file), **changes})
    try:
        document = tomlkit.parse(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        document = tomlkit.document()
    added = tomlkit.document()
    for section, wanted in changed.model_dump(exclude_none=True).items():
        if section == "default":
            _sync(document, section, wanted, added)
            continue
        existing = document.get(section, {})
        new = tomlkit.table(is_super_table=True)  # `[registry.local]`, no `[registry]` above
        for name in [name for name in existing if name not in wanted]:
            del existing[name]
        for name, values in wanted.items():
            _sync(existing, name, values, new)
        if new:
            added[section] = new
    text = tomlkit.dumps(document).rstrip("\n")
    if added:
        text = f"{text}\n\n{tomlkit.dumps(added)}" if text else tomlkit.dumps(added)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text.rstrip("\n") + "\n", encoding="utf-8")
    temporary.replace(path)


def _sync(
    parent: MutableMapping[str, Any],
    name: str,
    wanted: Mapping[str, Any],
    added: MutableMapping[str, Any],
) -> None:
    """Make the table ``parent[name]`` hold the values ``wanted``, editing it in place; a
    table that is not there yet goes into ``added`` (written at the end of the file), and an
    empty one is left out."""
    table = parent.get(name)
    if table is None:
        if wanted:
            added[name] = dict(wanted)
        return
    if not wanted:
        del parent[name]
        return
    for key in [key for key in table if key not in wanted]:
        del table[key]
    for key, value in wanted.items():
        if table.get(key) != value:
            table[key] = value


def table(*columns: str, whole: Collection[str] = ()) -> Table:
    """A plain table with these columns: long values wrap, except in the ``whole`` ones."""
    output = Table(box=None, pad_edge=False, header_style="bold")
    for column in columns:
        output.add_column(column, overflow="fold", no_wrap=column in whole)
    return output


# stardag auth ...


@auth_app.command("login")
@friendly
def auth_login(
    registry: RegistryOption = None,
    organization: Annotated[
        str | None,
        typer.Option("--organization", "-o", help="Sign in to this organization (a slug)."),
    ] = None,
    device: Annotated[
        bool,
        typer.Option("--device", help="Use the device flow (for a machine without a browser)."),
    ] = False,
) -> None:
    """Sign in: in a browser (PKCE, redirect to a loopback port), or with --device.

    With an active profile, signs in to its registry and organization. With no profile at
    all, asks for the organization and the workspace, and creates one.
    """
    try:
        # Signing in needs the optional `registry` extra (httpx).
        import httpx

        from stardag_core import login
    except ImportError as error:
        raise ConfigError(
            f"signing in needs the registry extra ({error}): pip install 'stardag[registry]'"
        ) from error
    configuration = Configuration.load()
    config = _login_target(configuration, registry)
    if organization is not None:
        config = replace(config, organization=organization)
    store = credential_store()
    token: RegistryToken | None = None
    with httpx.Client(timeout=login.TIMEOUT) as http:
        auth = login.AuthConfig.fetch(http, config.url)
        if auth is None:
            console.print(f"{config.url} runs in local mode: nobody needs to sign in.")
        else:
            provider = login.Provider.discover(http, auth.issuer)
            if device:
                tokens = login.device_login(http, auth, provider, _show_device_code)
            else:
                tokens = login.browser_login(http, auth, provider, _open_browser)
            subject = tokens.access_token.get_secret_value()
            token = login.exchange(http, config.url, subject, config.organization)
            store.save_token(config.url, config.organization, token)
            store.save_login(
                LoginRecord(
                    registry_url=config.url,
                    issuer=auth.issuer,
                    client_id=auth.client_id,
                    token_endpoint=provider.token_endpoint,
                    scopes=auth.scopes,
                    refresh_token=tokens.refresh_token,
                    signed_in_at=datetime.now(UTC),
                )
            )
        with open_client(config) as client:
            email = _viewer_email(client)
            organizations = _organization_slugs(client)
        record = store.login(config.url)
        if record is not None and email:
            store.save_login(record.model_copy(update={"email": email}))
            console.print(f"Signed in to {config.url} as {email}.", highlight=False)
        if configuration.profiles():
            return
        chosen = _prompt_choice("Organization", organizations, organizations[0])
        config = replace(config, organization=chosen)
        if token is not None:
            if token.organization != chosen:
                # A registry token is for one organization: trade it for the chosen one's.
                subject = token.access_token.get_secret_value()
                token = login.exchange(http, config.url, subject, chosen)
            store.save_token(config.url, chosen, token)
    with open_client(config) as client:
        slugs = [w.slug for w in client.workspaces() if w.organization == chosen]
    if not slugs:
        raise ConfigError(f"you reach no workspace of {chosen} at {config.url}")
    workspace = _prompt_choice("Workspace", slugs, "default" if "default" in slugs else slugs[0])
    _create_profile(config, chosen, workspace)


def _login_target(configuration: Configuration, registry: str | None) -> RegistryConfig:
    """Where to sign in: --registry, else the active profile's registry (said so), else
    STARDAG_REGISTRY_URL, else the only registry."""
    if registry is not None:
        named = configuration.registry(registry, "--registry")
        return RegistryConfig(named.value.url, registry, None, None, None, "--registry")
    config = configuration.resolve()
    if config is not None:
        if config.profile is not None:
            console.print(
                f"Using profile {config.profile!r} ({config.reason}): {config.describe()}.",
                highlight=False,
            )
        return config
    registries = configuration.registries()
    if len(registries) == 1:
        (name, named), *_ = registries.items()
        return RegistryConfig(named.value.url, name, None, None, None, "the only registry")
    known = ", ".join(registries) or "none yet"
    raise ConfigError(
        f"which registry? Pass --registry NAME (known: {known}); add one with "
        "`stardag registry add NAME --url URL`"
    )


def _open_browser(url: str) -> None:
    console.print(f"Opening the sign-in page in your browser; if it does not open, visit\n{url}")
    webbrowser.open(url)


def _show_device_code(code: "DeviceCode") -> None:
    complete = code.verification_uri_complete
    console.print(
        f"To sign in, visit {code.verification_uri} and enter the code {code.user_code}"
        + (f"\n(or open {complete})" if complete else ""),
        highlight=False,
    )
    console.print("Waiting for the sign-in to be approved...")


def _viewer_email(client: "RegistryClient") -> str | None:
    viewer = client.execute("{ viewer { email } }")["viewer"]
    return str(viewer["email"]) if viewer else None


def _organization_slugs(client: "RegistryClient") -> list[str]:
    """The caller's organizations: every membership of a person, else what the credential
    reaches."""
    data = client.execute(
        "{ viewer { memberships { organization { slug } } } organizations { slug } }"
    )
    if data["viewer"] is not None:
        slugs = [m["organization"]["slug"] for m in data["viewer"]["memberships"]]
    else:
        slugs = [organization["slug"] for organization in data["organizations"]]
    if not slugs:
        raise ConfigError(
            f"you belong to no organization at {client.config.url}: ask for an invite"
        )
    return sorted(slugs)


def _prompt_choice(what: str, choices: list[str], default: str) -> str:
    """Ask until the answer is one of ``choices``."""
    while True:
        answer = str(typer.prompt(f"{what} ({', '.join(choices)})", default=default)).strip()
        if answer in choices:
            return answer
        errors.print(f"{answer!r} is not one of {', '.join(choices)}", highlight=False)


def _create_profile(config: RegistryConfig, organization: str, workspace: str) -> None:
    """Ask for a name; save the profile (and its registry) and make it the default."""
    name = typer.prompt("Profile name", default=f"{organization}-{workspace}")
    registry = config.registry or _registry_name(config.url)
    path = stardag_home() / CONFIG_FILE
    file = ConfigFile.read(path)
    write_config(
        path,
        file,
        registry={**file.registry, registry: RegistryEntry(url=config.url)},
        profile={
            **file.profile,
            name: Profile(registry=registry, organization=organization, workspace=workspace),
        },
        default=DefaultSection(profile=name),
    )
    console.print(f"Created profile {name!r} and made it the default ({path}).", highlight=False)


def _registry_name(url: str) -> str:
    configuration = Configuration.load()
    for name, named in configuration.registries().items():
        if named.value.url == url:
            return name
    return "default" if "default" not in configuration.registries() else "registry"


@auth_app.command("logout")
@friendly
def auth_logout(registry: RegistryOption = None) -> None:
    """Sign out: revoke the sign-in at the identity provider, and forget it and the cached
    tokens of the registry here (even when the provider cannot be told)."""
    config = _login_target(Configuration.load(), registry)
    store = credential_store()
    record = store.login(config.url)
    if record is None or not store.forget(config.url):
        console.print(f"Not signed in to {config.url}.", highlight=False)
        return
    console.print(f"Signed out of {config.url}.", highlight=False)
    console.print(f"  {_revocation(record)}", highlight=False)


def _revocation(record: LoginRecord) -> str:
    """Revoke ``record`` at its identity provider, and say how that went."""
    lapses = "the sign-in lapses when its refresh token expires"
    try:
        # Revoking needs the optional `registry` extra (httpx).
        from stardag_core import login
    except ImportError as error:
        return f"Not revoked at {record.issuer} ({error}): {lapses}."
    try:
        revoked = login.revoke(record)
    except StardagError as error:
        return f"Not revoked: {error}; {lapses}."
    if revoked:
        return f"The identity provider {record.issuer} revoked the sign-in."
    return f"{record.issuer} offers no token revocation: {lapses}."


@auth_app.command("status")
@friendly
def auth_status() -> None:
    """Who stardag acts as, where, and whether the registry accepts it (no secrets shown)."""
    config = Configuration.load().resolve()
    if config is None:
        console.print("No registry is configured: `stardag auth login` sets one up.")
        return
    console.print(f"{config.describe()}", highlight=False)
    console.print(f"  chosen because {config.reason}", highlight=False)
    record = credential_store().login(config.url)
    if config.api_key is not None:
        console.print("  credential: the API key in STARDAG_API_KEY")
    elif record is not None:
        console.print(f"  {_describe_login(record)}", highlight=False)
        token = credential_store().token(config.url, config.organization)
        if token is not None:
            until = token.expires_at.astimezone().strftime("%H:%M:%S")
            console.print(f"  registry token for {token.organization}, cached until {until}")
    else:
        console.print("  not signed in (fine for a registry in local mode)")
    with open_client(config) as client:
        try:
            email = _viewer_email(client)
        except StardagError as error:
            console.print(f"  [red]the registry refuses:[/] {error}", highlight=False)
            raise typer.Exit(1) from None
    who = f"as {email}" if email else "without a person (API key or local mode)"
    console.print(f"  the registry accepts the credential, {who}", highlight=False)


def _describe_login(record: LoginRecord) -> str:
    since = record.signed_in_at.astimezone().strftime("%Y-%m-%d %H:%M")
    who = record.email or "(unknown email)"
    return f"signed in as {who} at {record.issuer} since {since}"


@auth_app.command("refresh")
@friendly
def auth_refresh() -> None:
    """Renew the registry token now."""
    with open_client() as client:
        credential = client.credential
        if not isinstance(credential, SignedIn):
            raise ConfigError(
                f"nothing to refresh for {client.config.url}: it uses {credential!r}; sign in "
                "with `stardag auth login`"
            )
        token = credential.refresh()
    until = token.expires_at.astimezone().strftime("%H:%M:%S")
    console.print(f"Renewed the registry token for {token.organization}, valid until {until}.")
