"""People signing in through the identity provider: linking to a user, or provisioning one.

A user is found by the provider's subject. Failing that, an existing user with the same email
is linked only when the provider says it verified the address; a new user gets a personal
organization with a `default` workspace, which they own.
"""

import re
import secrets
import uuid

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from stardag_graphql.errors import CredentialError
from stardag_graphql.models import Organization, User
from stardag_graphql.oidc import ProviderIdentity
from stardag_graphql.store.organizations import create_organization


async def sign_in(session: AsyncSession, person: ProviderIdentity) -> User:
    """The user `person` signs in as, created (with a personal organization) on first login.

    Commits. A first login that races another for the same person retries once.
    """
    try:
        user = await _user_for(session, person)
        await session.commit()
    except IntegrityError:
        # The other login committed the same person in between: this time it finds them.
        await session.rollback()
        user = await _user_for(session, person)
        await session.commit()
    return user


async def _user_for(session: AsyncSession, person: ProviderIdentity) -> User:
    email = person.email.strip().lower()
    user = await session.scalar(select(User).where(User.oidc_subject == person.subject))
    if user is not None:
        user.display_name = person.name or user.display_name
        if person.email_verified and email != user.email:
            taken = await session.scalar(select(User.id).where(User.email == email))
            if taken is None:
                user.email = email
        user.email_verified = person.email_verified and email == user.email
        await session.flush()
        return user
    existing = await session.scalar(select(User).where(User.email == email))
    if existing is not None:
        if existing.oidc_subject is not None or not person.email_verified:
            raise CredentialError(
                f"another account already uses the email {email!r}, and it cannot be linked "
                "to this login"
                + (
                    ": your identity provider has not verified the address; verify it there"
                    if not person.email_verified
                    else ": sign in with the account you used before"
                )
            )
        existing.oidc_subject = person.subject
        existing.email_verified = True
        existing.display_name = person.name or existing.display_name
        await session.flush()
        return existing
    user = User(
        id=uuid.uuid4(),
        email=email,
        email_verified=person.email_verified,
        display_name=person.name,
        oidc_subject=person.subject,
    )
    session.add(user)
    await session.flush()
    name = person.name or email.partition("@")[0]
    await create_organization(
        session, user.id, await _free_slug(session, email), f"{name} (personal)"
    )
    return user


async def _free_slug(session: AsyncSession, email: str) -> str:
    """An organization slug from the email's local part, with a suffix if that one is taken."""
    base = re.sub(r"[^a-z0-9]+", "-", email.partition("@")[0].lower()).strip("-")[:40] or "user"
    slug = base
    while await session.scalar(select(Organization.id).where(Organization.slug == slug)):
        slug = f"{base}-{secrets.token_hex(3)}"
    return slug
