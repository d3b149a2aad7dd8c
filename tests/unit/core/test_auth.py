"""The one token check: header parsing, roles, what an unset token means."""

from __future__ import annotations

import doctest

import pytest

from sluice.core import auth, tokens
from sluice.core.auth import (
    ADMIN_TOKEN,
    FEATURE_READ_TOKEN,
    FEATURE_WRITE_TOKEN,
    AdminDisabled,
    AuthDisabled,
    admin_role,
    authorize,
    bearer_token,
    reader_role,
    writer_role,
)
from sluice.core.errors import Unauthorized


def test_doctests() -> None:
    assert doctest.testmod(auth, optionflags=doctest.ELLIPSIS).failed == 0
    assert doctest.testmod(tokens).failed == 0


def test_while_a_token_rotates_both_are_accepted_and_nothing_else() -> None:
    role = admin_role("new, old")
    for header in ["Bearer new", "Bearer old"]:
        authorize(role, header)
    for wrong in ["Bearer new,old", "Bearer new, old", "Bearer ne", "Bearer older", "Bearer ,"]:
        with pytest.raises(Unauthorized, match="wrong token for the admin API"):
            authorize(role, wrong)


def test_a_list_of_blanks_is_no_token() -> None:
    with pytest.raises(AdminDisabled):
        authorize(admin_role(" , "), "Bearer anything")
    authorize(reader_role("reads", FEATURE_READ_TOKEN, ","), None)  # still open


def test_a_writer_falls_back_to_every_admin_token() -> None:
    role = writer_role("feedback", "SLUICE_FEEDBACK_TOKEN", None, "a2,a1")
    authorize(role, "Bearer a1")
    authorize(role, "Bearer a2")


@pytest.mark.parametrize("header", ["Bearer s3cret", "bearer s3cret", "BEARER s3cret",
                                    "  Bearer   s3cret  "])  # fmt: skip
def test_the_scheme_is_case_insensitive(header: str) -> None:
    assert bearer_token(header, ADMIN_TOKEN) == "s3cret"
    authorize(admin_role("s3cret"), header)


@pytest.mark.parametrize("header", ["s3cret", "Basic s3cret", "Bearer", "Bearer ", "Bearers3cret",
                                    "Token s3cret"])  # fmt: skip
def test_a_bare_token_or_another_scheme_is_refused(header: str) -> None:
    with pytest.raises(Unauthorized, match=r"Bearer <token>.*SLUICE_ADMIN_TOKEN") as caught:
        authorize(admin_role("s3cret"), header)
    assert caught.value.status == 401 and caught.value.code == "unauthorized"


@pytest.mark.parametrize("header", [None, "", "   "])
def test_no_header_is_refused(header: str | None) -> None:
    with pytest.raises(Unauthorized, match=r"missing credentials.*SLUICE_ADMIN_TOKEN"):
        authorize(admin_role("s3cret"), header)


def test_a_wrong_token_is_refused() -> None:
    for wrong in ["Bearer nope", "Bearer s3cre", "Bearer s3cret2", "Bearer S3CRET"]:
        with pytest.raises(Unauthorized, match="wrong token for the admin API"):
            authorize(admin_role("s3cret"), wrong)


def test_unset_admin_token_disables_the_admin_api() -> None:
    for token in [None, ""]:
        with pytest.raises(AdminDisabled, match="set SLUICE_ADMIN_TOKEN") as caught:
            authorize(admin_role(token), "Bearer anything")
        assert caught.value.status == 401 and caught.value.code == "admin_disabled"


def test_a_writer_falls_back_to_the_admin_token_only_while_its_own_is_unset() -> None:
    fallback = writer_role("feature pushes", FEATURE_WRITE_TOKEN, None, "admin")
    authorize(fallback, "Bearer admin")
    with pytest.raises(Unauthorized, match=r"Bearer <SLUICE_ADMIN_TOKEN>"):
        authorize(fallback, "Bearer writer")

    own = writer_role("feature pushes", FEATURE_WRITE_TOKEN, "writer", "admin")
    authorize(own, "Bearer writer")
    with pytest.raises(Unauthorized, match=r"Bearer <SLUICE_FEATURE_WRITE_TOKEN>"):
        authorize(own, "Bearer admin")


def test_a_writer_with_no_token_at_all_is_refused_naming_both_variables() -> None:
    role = writer_role("feature pushes", FEATURE_WRITE_TOKEN, None, None)
    with pytest.raises(AuthDisabled) as caught:
        authorize(role, "Bearer anything")
    message = caught.value.message
    assert FEATURE_WRITE_TOKEN in message and ADMIN_TOKEN in message
    assert caught.value.code == "auth_disabled"


def test_reads_are_open_until_the_read_token_is_set() -> None:
    authorize(reader_role("reads", FEATURE_READ_TOKEN, None), None)
    closed = reader_role("reads", FEATURE_READ_TOKEN, "reader")
    authorize(closed, "bearer reader")
    with pytest.raises(Unauthorized, match="SLUICE_FEATURE_READ_TOKEN"):
        authorize(closed, None)
    with pytest.raises(Unauthorized):
        authorize(closed, "reader")
