"""Bearer tokens for every write and admin endpoint, and capped request bodies.

One scheme across services: ``Authorization: Bearer <token>``. The scheme is compared
case-insensitively (RFC 7235: ``bearer`` and ``BEARER`` are the same scheme), the token in
constant time (``hmac.compare_digest``). A bare token without the scheme, another scheme,
or a wrong token is a 401 with a JSON error naming the variable that holds the token.

Roles, one token each, all read from the environment by the services' ``settings.py``:

==============  ===============================  ==========================================
role            variable                         guards
==============  ===============================  ==========================================
admin           ``SLUICE_ADMIN_TOKEN``           router admin, rollout controller admin
feature writer  ``SLUICE_FEATURE_WRITE_TOKEN``   feature store pushes (every write)
feedback        ``SLUICE_FEEDBACK_TOKEN``        drift monitor ``POST /v1/feedback``
feature reader  ``SLUICE_FEATURE_READ_TOKEN``    feature store online reads (optional)
==============  ===============================  ==========================================

When a role's token is unset:

- admin: the admin API refuses every call (``admin_disabled``: "set SLUICE_ADMIN_TOKEN").
- feature writer, feedback: the role falls back to ``SLUICE_ADMIN_TOKEN``, so a one-token
  setup works; with neither set the write is refused (``auth_disabled``, naming both
  variables). Once the role's own token is set, only it is accepted: a writer's token never
  opens the admin API, and the admin token no longer opens the role's endpoints.
- feature reader: reads are open (no fallback); set it to require a token for reads.

Rotation without downtime: a variable may hold several tokens separated by commas
(``SLUICE_ADMIN_TOKEN=new,old``). Each one is accepted; a service that is itself a client
of the role (the router reading features over HTTP, the CLIs) sends the first. Put the new
token first, roll the services, move the clients to it, then drop the old one
(docs/security.md).

A write endpoint checks credentials first and only then reads its body, incrementally and
capped (:func:`json_body`): an unauthenticated or oversized upload costs no memory.
FastAPI reads a declared ``Body()`` *before* running dependencies, so write endpoints take
their body from :func:`json_body` instead (a dependency listed after the token check).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, SecretStr, ValidationError

from sluice.core.errors import InvalidInput, Unauthorized
from sluice.core.handlers import parse_json
from sluice.core.http import read_body
from sluice.core.tokens import tokens

ADMIN_TOKEN = "SLUICE_ADMIN_TOKEN"
FEATURE_WRITE_TOKEN = "SLUICE_FEATURE_WRITE_TOKEN"
FEEDBACK_TOKEN = "SLUICE_FEEDBACK_TOKEN"
FEATURE_READ_TOKEN = "SLUICE_FEATURE_READ_TOKEN"

M = TypeVar("M", bound=BaseModel)


class AuthDisabled(Unauthorized):
    """No token is configured for the role, so its endpoints refuse every call."""

    code = "auth_disabled"


class AdminDisabled(AuthDisabled):
    """No admin token is configured, so the admin API refuses every call."""

    code = "admin_disabled"


@dataclass(frozen=True)
class Role:
    """Who may call an endpoint: ``what`` it guards (for messages), the variable that holds
    its tokens, the tokens, and what happens when none is set (``fallback``: the admin
    tokens, named by ``fallback_variable``; ``open_when_unset``: no check at all)."""

    what: str
    variable: str
    token: tuple[str, ...]
    fallback: tuple[str, ...] = ()
    fallback_variable: str | None = None
    open_when_unset: bool = False

    @property
    def expected(self) -> tuple[str, ...]:
        """The tokens a caller may send; empty when the role has none configured."""
        return self.token or self.fallback

    @property
    def names(self) -> str:
        """The variable(s) whose token is accepted, for error messages."""
        if not self.token and self.fallback and self.fallback_variable:
            return self.fallback_variable
        return self.variable


def admin_role(token: SecretStr | str | None) -> Role:
    """The admin API's role: ``SLUICE_ADMIN_TOKEN``; unset refuses every call."""
    return Role("the admin API", ADMIN_TOKEN, tokens(token))


def writer_role(
    what: str, variable: str, token: SecretStr | str | None, admin: SecretStr | str | None
) -> Role:
    """A writer's role (feature writer, feedback): its own tokens, else the admin tokens."""
    return Role(what, variable, tokens(token), tokens(admin), ADMIN_TOKEN)


def reader_role(what: str, variable: str, token: SecretStr | str | None) -> Role:
    """An optional reader's role: unset leaves the endpoint open."""
    return Role(what, variable, tokens(token), open_when_unset=True)


def bearer_token(authorization: str | None, variable: str) -> str:
    """The token of an ``Authorization: Bearer <token>`` header; 401 when it is not one.

    >>> bearer_token("bearer s3cret", "SLUICE_ADMIN_TOKEN")
    's3cret'
    >>> bearer_token("s3cret", "SLUICE_ADMIN_TOKEN")
    Traceback (most recent call last):
    ...
    sluice.core.errors.Unauthorized: Authorization must be 'Bearer <token>' ...
    """
    if not authorization or not authorization.strip():
        raise Unauthorized(f"missing credentials: send Authorization: Bearer <{variable}>")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized(
            f"Authorization must be 'Bearer <token>' (a bare token or another scheme is "
            f"refused): send Authorization: Bearer <{variable}>"
        )
    return token


def authorize(role: Role, authorization: str | None) -> None:
    """The one check: raise 401 unless ``authorization`` carries one of the role's tokens."""
    expected = role.expected
    if not expected:
        if role.open_when_unset:
            return
        if role.variable == ADMIN_TOKEN:
            raise AdminDisabled(f"{role.what} is disabled: set {ADMIN_TOKEN}")
        also = f" (or {role.fallback_variable})" if role.fallback_variable else ""
        raise AuthDisabled(f"{role.what} is disabled: set {role.variable}{also}")
    given = bearer_token(authorization, role.names).encode()
    matched = False
    for token in expected:  # every one compared, whichever matches
        matched |= hmac.compare_digest(given, token.encode())
    if not matched:
        raise Unauthorized(
            f"wrong token for {role.what}: send Authorization: Bearer <{role.names}>"
        )


def require(role: Role) -> Callable[[Request], None]:
    """A FastAPI dependency checking ``role``'s token, before any body is read:
    ``APIRouter(dependencies=[Depends(require(admin_role(token)))])``."""

    def check(request: Request) -> None:
        authorize(role, request.headers.get("authorization"))

    return check


def admin_guard(token: SecretStr | str | None) -> Callable[[Request], None]:
    """``require(admin_role(token))``: kept for the callers that predate roles."""
    return require(admin_role(token))


async def read_json(request: Request, limit: int) -> Any:
    """The request body as JSON, read incrementally and refused (413) past ``limit`` bytes
    (a ``Content-Length`` over it is refused before reading anything)."""
    return parse_json(await read_body(request, limit))


async def read_object(request: Request, limit: int) -> dict[str, Any]:
    """:func:`read_json` for a body that must be a JSON object. Call it in an endpoint
    guarded by :func:`require` (router dependencies run before the endpoint)."""
    doc = await read_json(request, limit)
    if not isinstance(doc, dict):
        raise InvalidInput("request body must be a JSON object")
    return doc


def json_body(limit: int) -> Callable[[Request], Awaitable[dict[str, Any]]]:
    """A FastAPI dependency: the body as a JSON object, capped at ``limit`` bytes. Use it
    after the token check (router dependencies run first) instead of a ``Body()``."""

    async def body(request: Request) -> dict[str, Any]:
        return await read_object(request, limit)

    return body


async def read_model(request: Request, model: type[M], limit: int) -> M:
    """:func:`read_json` validated into ``model`` (errors as FastAPI's own 422s)."""
    doc = await read_json(request, limit)
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        raise RequestValidationError(errors) from None


def model_body(model: type[M], limit: int) -> Callable[[Request], Awaitable[M]]:
    """Like :func:`json_body`, validated into ``model``."""

    async def body(request: Request) -> M:
        return await read_model(request, model, limit)

    return body


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` documenting a body read by :func:`model_body` (FastAPI cannot see
    it): ``@router.post(..., openapi_extra=body_schema(Feedback))``."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }
