"""`/user/api-access-tokens`: the signed-in user's API access tokens, "New API Access Token"
(its value shown once, in the answer to the form) and "Revoke"."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from kiteline.server.kit.errors import ValidationFailed
from kiteline.server.kit.ids import parse_uuid
from kiteline.server.kit.scopes import SCOPES
from kiteline.server.tokens import service as tokens
from kiteline.server.tokens.service import IssuedToken
from kiteline.server.web.auth import Viewer, page_transaction
from kiteline.server.web.routing import page_router
from kiteline.server.web.templating import render

router = page_router()

TOKENS = "/user/api-access-tokens"
NO_SUCH_ORGANIZATION = "must be one of your organizations"


@dataclass
class TokenForm:
    """What the "New API Access Token" form shows: the values given and what was wrong."""

    description: str = ""
    scopes: list[str] = field(default_factory=list)
    organization: str = ""
    errors: dict[str, list[str]] = field(default_factory=dict)


async def _index(
    request: Request, *, issued: IssuedToken | None = None, status: int = 200
) -> Response:
    """The list of tokens (read in a transaction of its own: after a creation, the token is
    committed before the page shows it)."""
    async with page_transaction(request, read_only=True) as (session, viewer):
        listed = await tokens.list_for_user(session, viewer.user.id)
        names = {o.id: o.name for o in viewer.organizations}
        return render(
            request,
            "api_tokens/index.html",
            viewer=viewer,
            tokens=listed,
            organization_names=names,
            all_scopes=SCOPES,
            issued=issued,
            status=status,
        )


@router.get(TOKENS)
async def tokens_page(request: Request) -> Response:
    return await _index(request)


def _new_form(request: Request, viewer: Viewer, form: TokenForm, status: int = 200) -> Response:
    return render(
        request,
        "api_tokens/new.html",
        viewer=viewer,
        form=form,
        scopes=SCOPES,
        organizations=viewer.links,
        status=status,
    )


@router.get(TOKENS + "/new")
async def new_token_page(request: Request) -> Response:
    async with page_transaction(request) as (_session, viewer):
        return _new_form(request, viewer, TokenForm(scopes=["read_user"]))


@router.post(TOKENS)
async def create_token(request: Request) -> Response:
    """Creates the token through the tokens service and answers with the list, the new
    token's value shown this once (it is stored only as a hash)."""
    submitted = await request.form()
    form = TokenForm(
        description=str(submitted.get("description") or "").strip(),
        scopes=[str(scope) for scope in submitted.getlist("scopes")],
        organization=str(submitted.get("organization") or ""),
    )
    viewer: Viewer | None = None
    try:
        async with page_transaction(request) as (session, viewer):
            organization_id: uuid.UUID | None = None
            if form.organization:
                chosen = next(
                    (o for o in viewer.organizations if o.slug == form.organization), None
                )
                if chosen is None:
                    raise ValidationFailed.field("organization", NO_SUCH_ORGANIZATION)
                organization_id = chosen.id
            issued = await tokens.create_api_token(
                session,
                user_id=viewer.user.id,
                scopes=form.scopes,
                description=form.description or None,
                organization_id=organization_id,
            )
    except ValidationFailed as error:
        if viewer is None:
            raise
        for item in error.errors:
            form.errors.setdefault(item["field"], []).append(item["code"])
        return _new_form(request, viewer, form, status=422)
    return await _index(request, issued=issued)


@router.post(TOKENS + "/{token_id}/revoke")
async def revoke_token(request: Request, token_id: str) -> Response:
    async with page_transaction(request) as (session, viewer):
        token = await tokens.get_for_user(
            session, user_id=viewer.user.id, token_id=parse_uuid(token_id)
        )
        await tokens.revoke_api_token(session, token.id)
    return RedirectResponse(TOKENS, status_code=303)
