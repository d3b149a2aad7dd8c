"""The admin APIs' bearer token: one check for every service that has an admin API."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated

from fastapi import Header

from sluice.core.errors import Unauthorized


class AdminDisabled(Unauthorized):
    """No admin token is configured, so the admin API refuses every call."""

    code = "admin_disabled"


def admin_guard(token: str | None) -> Callable[[str | None], None]:
    """A FastAPI dependency: ``Authorization: Bearer <SLUICE_ADMIN_TOKEN>``, compared in
    constant time; with no token configured every call is refused."""

    def authorize(authorization: Annotated[str | None, Header()] = None) -> None:
        if token is None:
            raise AdminDisabled("the admin API is disabled: set SLUICE_ADMIN_TOKEN")
        given = (authorization or "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise Unauthorized("the admin API needs Authorization: Bearer <SLUICE_ADMIN_TOKEN>")

    return authorize
