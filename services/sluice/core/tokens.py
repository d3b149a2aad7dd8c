"""What a token variable holds: one token, or several while one rotates (no web framework
imported here: the CLIs read tokens too). See :mod:`sluice.core.auth`."""

from __future__ import annotations

from pydantic import SecretStr


def tokens(value: SecretStr | str | None) -> tuple[str, ...]:
    """The tokens a variable holds: comma-separated, blanks dropped.

    >>> tokens("new, old")
    ('new', 'old')
    >>> tokens(None), tokens(" , ")
    ((), ())
    """
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    return tuple(t for t in (part.strip() for part in (text or "").split(",")) if t)


def client_token(value: SecretStr | str | None) -> str | None:
    """The token to send as a client of a role: the variable's first (the newest).

    >>> client_token("new,old")
    'new'
    """
    found = tokens(value)
    return found[0] if found else None
