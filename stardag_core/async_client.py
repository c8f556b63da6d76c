"""An asynchronous GraphQL client of a registry, for code that runs inside an event loop
(the GUI): queries and mutations over HTTP, subscriptions over graphql-transport-ws::

    client = AsyncRegistryClient("http://127.0.0.1:8000", credential)
    data = await client.execute("{ organizations { slug } }")
    async for event in client.subscribe(BUILD_EVENTS, buildId=build_id):
        ...
    await client.aclose()

Both send the caller's bearer, asked for anew on each request and each subscription so a
short-lived token can refresh in between. Every failure is a `RegistryError` that says what
the registry answered (or that it could not be reached), without the credential.
"""

from collections.abc import AsyncIterator
from typing import Any

import httpx
from gql import Client
from gql.transport.exceptions import TransportError
from gql.transport.httpx import HTTPXAsyncTransport
from gql.transport.websockets import WebsocketsTransport

from stardag_core.channel import Bearer, Credential, TextRequest, registry_error, tls_context

FAILURES = (TransportError, httpx.HTTPError, OSError)


class AsyncRegistryClient:
    """GraphQL requests and subscriptions to the registry at ``url``, as one caller."""

    def __init__(self, url: str, credential: Credential = None, *, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._credential = credential
        self._client = Client(
            transport=HTTPXAsyncTransport(
                url=f"{self.url}/graphql",
                auth=Bearer(credential),
                timeout=timeout,
                verify=tls_context(self.url),
            ),
            fetch_schema_from_transport=False,
        )
        self._session: Any = None

    def __repr__(self) -> str:
        return f"AsyncRegistryClient({self.url!r})"

    async def execute(self, document: str, **variables: Any) -> dict[str, Any]:
        """The data of ``document``; ``RegistryError`` with the registry's message otherwise."""
        try:
            if self._session is None:
                self._session = await self._client.connect_async()  # type: ignore[no-untyped-call]
            result = await self._session.execute(TextRequest(document, variables))
        except FAILURES as error:
            raise registry_error(self.url, error) from None
        return dict(result)

    async def subscribe(self, document: str, **variables: Any) -> AsyncIterator[dict[str, Any]]:
        """The results of the subscription ``document``, as the registry sends them."""
        headers = {}
        if bearer := self._bearer():
            headers["Authorization"] = f"Bearer {bearer}"
        transport = WebsocketsTransport(
            url="ws" + self.url.removeprefix("http") + "/graphql",
            headers=headers,
            subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
        )
        request = TextRequest(document, variables)
        try:
            async with Client(transport=transport, fetch_schema_from_transport=False) as session:
                async for result in session.subscribe(request):
                    yield dict(result)
        except FAILURES as error:
            raise registry_error(self.url, error) from None

    async def aclose(self) -> None:
        """Close the HTTP connection (a later request opens a new one)."""
        if self._session is not None:
            self._session = None
            await self._client.close_async()  # type: ignore[no-untyped-call]

    def _bearer(self) -> str | None:
        credential = self._credential
        return credential() if callable(credential) else credential
