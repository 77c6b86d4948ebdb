"""Organizations, the token's user and the token itself."""

from __future__ import annotations

from kiteline.client._effects import Op, Stream, get_model
from kiteline.client._pages import paginate
from kiteline.client.config import ClientConfig
from kiteline.client.models import AccessToken, Organization, User


def organizations(config: ClientConfig, *, per_page: int | None = None) -> Stream[Organization]:
    """Every organization the token's user belongs to."""
    yield from paginate(config, config.rest("organizations"), Organization, {}, per_page)


def organization(config: ClientConfig, org: str | None = None) -> Op[Organization]:
    """One organization (the default one when `org` is omitted)."""
    url = config.rest("organizations", config.organization(org))
    return (yield from get_model(config, url, Organization))


def user(config: ClientConfig) -> Op[User]:
    """The user the token belongs to (needs `read_user`)."""
    return (yield from get_model(config, config.rest("user"), User))


def access_token(config: ClientConfig) -> Op[AccessToken]:
    """The token itself: its scopes and owner. Any valid token may ask."""
    return (yield from get_model(config, config.rest("access-token"), AccessToken))
