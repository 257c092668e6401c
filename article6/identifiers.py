"""Identifiers: registries, Parties, cooperative approaches, ITMOs, accounts, transactions.

The ITMO unique identifier carries the minimum elements of decision 6/CMA.4 annex I para 5,
joined by hyphens in this order: cooperative approach, originating registry,
first-transferring Party, serial number, vintage. For example ``CA0001-GHA01-GHA-1000-2024``.
A block of ITMOs is written as its first and last identifiers. Registry ids hold no hyphen,
so the five elements always split back unambiguously.

Account ids follow the Kyoto habit of check digits: ``<registry>-<number>-<check>``, where
``check`` is the ISO 7064 MOD 97-10 pair over ``<registry><number>`` (letters valued A=10 to
Z=35, as in IBANs).

Every ``parse_*`` or ``check_*`` function raises ``Refusal`` with the code for its kind of
identifier, so a caller needs no mapping of its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from article6.codes import Code, Refusal

REGISTRY_ID = re.compile(r"[A-Z][A-Z0-9]{1,15}")
# A Party's ITMO registry id as the AEF writes it: ISO 3166-1 alpha-3 and two digits.
PARTY_REGISTRY_ID = re.compile(r"[A-Z]{3}[0-9]{2}")
# Choice (docs/AEF.md): an ITMO from A6.4ERs is identified in the AEF with its host Party's
# code and these two digits as the registry element (GHA64), so no Party registry may use them.
A64_REGISTRY_SUFFIX = "64"
PARTY_CODE = re.compile(r"[A-Z]{3}")
# The AEF's cooperative approach id: "CA" and four digits (AEF syntax checkers).
COOPERATIVE_APPROACH_ID = re.compile(r"CA[0-9]{4}")
MESSAGE_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_SERIAL = re.compile(r"0|[1-9][0-9]{0,19}")
_YEAR = re.compile(r"[1-9][0-9]{3}")
_SEQUENCE = re.compile(r"[0-9]{1,20}")
_ACCOUNT_NUMBER = re.compile(r"[0-9]{1,12}")
_CHECK_DIGITS = re.compile(r"[0-9]{2}")

SERIAL_MAX = 2**64 - 1


def _require(pattern: re.Pattern[str], value: str, code: Code, what: str) -> str:
    if not pattern.fullmatch(value):
        raise Refusal(code, f"{what} {value!r} is malformed")
    return value


def check_registry_id(value: str) -> str:
    return _require(REGISTRY_ID, value, Code.REGISTRY_ID_INVALID, "registry id")


def check_party_code(value: str) -> str:
    return _require(PARTY_CODE, value, Code.PARTY_CODE_INVALID, "Party code")


def check_cooperative_approach_id(value: str) -> str:
    return _require(
        COOPERATIVE_APPROACH_ID, value, Code.COOPERATIVE_APPROACH_ID_INVALID, "cooperative approach"
    )


def check_message_id(value: str) -> str:
    return _require(MESSAGE_ID, value, Code.MESSAGE_ID_INVALID, "message id")


def check_year(value: int) -> int:
    """A four-digit calendar year (vintage, year of use). Plausibility is a check of its own."""
    if not 1000 <= value <= 9999:
        raise Refusal(Code.VINTAGE_INVALID, f"year {value} is not a four-digit year")
    return value


@dataclass(frozen=True, order=True)
class ItmoId:
    """One ITMO's unique identifier (6/CMA.4 annex I para 5 minimum elements)."""

    cooperative_approach: str
    originating_registry: str
    first_transferring_party: str
    serial: int
    vintage: int

    def __post_init__(self) -> None:
        assert COOPERATIVE_APPROACH_ID.fullmatch(self.cooperative_approach), self
        assert REGISTRY_ID.fullmatch(self.originating_registry), self
        assert PARTY_CODE.fullmatch(self.first_transferring_party), self
        assert 0 <= self.serial <= SERIAL_MAX, self
        assert 1000 <= self.vintage <= 9999, self

    def __str__(self) -> str:
        return (
            f"{self.cooperative_approach}-{self.originating_registry}-"
            f"{self.first_transferring_party}-{self.serial}-{self.vintage}"
        )


def parse_itmo_id(text: str) -> ItmoId:
    """Parse ``CA0001-GHA01-GHA-1000-2024``; refuse anything else with ITMO_ID_INVALID."""
    parts = text.split("-")
    valid = (
        len(parts) == 5
        and COOPERATIVE_APPROACH_ID.fullmatch(parts[0])
        and REGISTRY_ID.fullmatch(parts[1])
        and PARTY_CODE.fullmatch(parts[2])
        and _SERIAL.fullmatch(parts[3])
        and int(parts[3]) <= SERIAL_MAX
        and _YEAR.fullmatch(parts[4])
    )
    if not valid:
        raise Refusal(Code.ITMO_ID_INVALID, f"ITMO id {text!r} is malformed")
    return ItmoId(parts[0], parts[1], parts[2], int(parts[3]), int(parts[4]))


def mod97_check_digits(text: str) -> str:
    """ISO 7064 MOD 97-10 check digits for an alphanumeric string (letters A=10 .. Z=35)."""
    assert text.isascii(), text
    assert text.isalnum(), text
    assert text == text.upper(), text
    return f"{98 - int(_digits(text) + '00') % 97:02d}"


def _digits(text: str) -> str:
    return "".join(str(int(char, 36)) for char in text)


def format_account_id(registry: str, number: int) -> str:
    """The account id for account ``number`` of ``registry``, with its check digits."""
    assert REGISTRY_ID.fullmatch(registry), registry
    assert 0 <= number < 10**12, number
    return f"{registry}-{number}-{mod97_check_digits(f'{registry}{number}')}"


def check_account_id(value: str) -> str:
    """Refuse with ACCOUNT_ID_INVALID unless well formed with correct check digits."""
    parts = value.split("-")
    valid = (
        len(parts) == 3
        and REGISTRY_ID.fullmatch(parts[0])
        and _ACCOUNT_NUMBER.fullmatch(parts[1])
        and _CHECK_DIGITS.fullmatch(parts[2])
        and int(_digits(parts[0] + parts[1]) + parts[2]) % 97 == 1
    )
    if not valid:
        raise Refusal(Code.ACCOUNT_ID_INVALID, f"account id {value!r} is malformed")
    return value


def account_registry(account_id: str) -> str:
    """The registry part of a checked account id."""
    return account_id.split("-", 1)[0]


def check_transaction_id(value: str, sender: str) -> str:
    """A transaction id is ``<sender registry id>-<sequence number>``."""
    registry, _, sequence = value.partition("-")
    if registry != sender or not _SEQUENCE.fullmatch(sequence):
        raise Refusal(
            Code.TRANSACTION_ID_INVALID, f"transaction id {value!r} must be '{sender}-<sequence>'"
        )
    return value
