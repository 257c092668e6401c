"""Identifiers: ITMO ids (6/CMA.4 elements), account check digits, ids in headers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from article6.codes import Code, Refusal
from article6.identifiers import (
    ItmoId,
    check_account_id,
    check_cooperative_approach_id,
    check_message_id,
    check_party_code,
    check_registry_id,
    check_transaction_id,
    check_year,
    format_account_id,
    mod97_check_digits,
    parse_itmo_id,
)

itmo_ids = st.builds(
    ItmoId,
    cooperative_approach=st.from_regex(r"CA[0-9]{4}", fullmatch=True),
    originating_registry=st.from_regex(r"[A-Z][A-Z0-9]{1,15}", fullmatch=True),
    first_transferring_party=st.from_regex(r"[A-Z]{3}", fullmatch=True),
    serial=st.integers(0, 2**64 - 1),
    vintage=st.integers(1000, 9999),
)


def test_itmo_id_has_the_six_cma4_elements_in_order() -> None:
    itmo = parse_itmo_id("CA0001-GHA01-GHA-1000-2024")
    assert itmo == ItmoId("CA0001", "GHA01", "GHA", 1000, 2024)
    assert str(itmo) == "CA0001-GHA01-GHA-1000-2024"


@given(itmo_ids)
def test_itmo_ids_round_trip(itmo: ItmoId) -> None:
    assert parse_itmo_id(str(itmo)) == itmo


@pytest.mark.parametrize(
    "text",
    [
        "",
        "CA0001-GHA01-GHA-1000",  # a missing element
        "CA0001-GHA01-GHA-1000-2024-1",  # one too many
        "CA01-GHA01-GHA-1000-2024",  # short cooperative approach
        "CA0001-gha01-GHA-1000-2024",  # lowercase registry
        "CA0001-GHA01-GH-1000-2024",  # two-letter Party
        "CA0001-GHA01-GHA-01000-2024",  # leading zero serial
        "CA0001-GHA01-GHA-18446744073709551616-2024",  # serial beyond 64 bits
        "CA0001-GHA01-GHA-1000-24",  # two-digit vintage
        "CA0001-GHA01-GHA--5-2024",  # negative serial
    ],
)
def test_malformed_itmo_ids_are_refused(text: str) -> None:
    with pytest.raises(Refusal) as refusal:
        parse_itmo_id(text)
    assert refusal.value.code is Code.ITMO_ID_INVALID


def test_mod97_check_digits_match_the_iban_reference() -> None:
    # IBAN GB82 WEST 1234 5698 7654 32: check digits over BBAN + country code.
    assert mod97_check_digits("WEST12345698765432GB") == "82"


@given(st.from_regex(r"[A-Z][A-Z0-9]{1,15}", fullmatch=True), st.integers(0, 10**12 - 1))
def test_account_ids_carry_valid_check_digits(registry: str, number: int) -> None:
    account = format_account_id(registry, number)
    assert check_account_id(account) == account


def test_a_wrong_check_digit_is_refused() -> None:
    account = format_account_id("GHA01", 1001)
    registry, number, digits = account.split("-")
    wrong = f"{registry}-{number}-{(int(digits) + 1) % 100:02d}"
    for candidate in (wrong, f"{registry}-{int(number) + 1}-{digits}", "GHA01-1001", "x"):
        with pytest.raises(Refusal) as refusal:
            check_account_id(candidate)
        assert refusal.value.code is Code.ACCOUNT_ID_INVALID


@pytest.mark.parametrize(
    ("check", "bad", "code"),
    [
        (check_registry_id, "GHA-01", Code.REGISTRY_ID_INVALID),
        (check_registry_id, "g", Code.REGISTRY_ID_INVALID),
        (check_party_code, "GHAN", Code.PARTY_CODE_INVALID),
        (check_cooperative_approach_id, "CB0001", Code.COOPERATIVE_APPROACH_ID_INVALID),
        (check_message_id, "0B7E6D2A-3C1F-4E8A-9D5B-2F6C8A1E4B70", Code.MESSAGE_ID_INVALID),
    ],
)
def test_malformed_ids_are_refused_with_their_code(check: object, bad: str, code: Code) -> None:
    assert callable(check)
    with pytest.raises(Refusal) as refusal:
        check(bad)
    assert refusal.value.code is code


def test_transaction_ids_belong_to_their_sender() -> None:
    assert check_transaction_id("GHA01-42", "GHA01") == "GHA01-42"
    for bad in ("CHE01-42", "GHA01-", "GHA01-4x", "GHA0142"):
        with pytest.raises(Refusal) as refusal:
            check_transaction_id(bad, "GHA01")
        assert refusal.value.code is Code.TRANSACTION_ID_INVALID


def test_years_have_four_digits() -> None:
    assert check_year(2024) == 2024
    for bad in (0, 999, 10000, -2024):
        with pytest.raises(Refusal):
            check_year(bad)
