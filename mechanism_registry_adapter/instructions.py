"""First-transfer instructions of the Article 6.4 mechanism registry, and the checks an
instruction passes before anything of it is forwarded. Pure: no SQL, no gRPC.

**Deductions at issuance.** Of every issuance of ``gross`` A6.4ERs, the share of proceeds
(5%) goes to the Adaptation Fund and 2% is cancelled for overall mitigation in global
emissions (OMGE) (decision 3/CMA.3 annex; 7/CMA.4). The decisions and the
procedures we could consult say nothing of fractions of a unit, so the rounding is the
operator's to state (``[mechanism] deduction_rounding``) and defaults to **down**, in
integers: ``share = floor(gross * 5 / 100)``, ``omge = floor(gross * 2 / 100)``. Rounding
down never deducts more than the percentages and lets every issuance pass (rounding both up,
an issuance of 1 A6.4ER could never be forwarded: 1 + 1 deducted from 1). The issuance record
must carry exactly these quantities as serial ranges inside the issued range, disjoint from
each other; only the rest (the net) may be forwarded.

The checks run in a fixed order and the first that fails gives the instruction's code: the
form of each field (2xxx), the authorization (6001, 5004), the vintage's plausibility (6005),
the serials among themselves (2005), then the issuance's arithmetic and where the forwarded
serials lie in it (6002, 6003, 6007). What needs the adapter's records (a repeated id, an
issuance seen before, serials already forwarded) is checked in ``intake``.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from article6.blocks import Block, SerialRange, find_overlaps, subtract, unit_count
from article6.codes import Code, Refusal
from article6.identifiers import (
    SERIAL_MAX,
    account_registry,
    check_account_id,
    check_cooperative_approach_id,
    check_party_code,
    check_registry_id,
    check_year,
)
from article6.limits import MAX_BLOCKS_PER_INSTRUCTION
from article6.model import (
    AuthorizationSpec,
    Purpose,
    UnitAttributes,
    UnitBlock,
    UnitKind,
    UnitState,
)

SHARE_OF_PROCEEDS_PERCENT = 5
OMGE_PERCENT = 2
FIRST_VINTAGE = 2021  # the mechanism's first crediting year
INSTRUCTION_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
ACTIVITY_ID = re.compile(r"[A-Za-z0-9._/-]{1,64}")
ISSUANCE_ID = INSTRUCTION_ID


class AuthorizationKind(enum.IntEnum):
    UNSPECIFIED = 0
    AUTHORIZED = 1
    MITIGATION_CONTRIBUTION = 2


class InstructionState(enum.IntEnum):
    """Numbers as in ``article6.v1.InstructionState``."""

    REFUSED = 1
    ISSUING = 2
    FORWARDING = 3
    COMPLETED = 4
    FAILED = 5

    @property
    def final(self) -> bool:
        return self in {InstructionState.REFUSED, InstructionState.COMPLETED,
                        InstructionState.FAILED}  # fmt: skip


@dataclass(frozen=True)
class AerAuthorization:
    authorization_id: str
    authorizing_party: str
    purpose: Purpose
    kind: AuthorizationKind
    cooperative_approach: str  # empty: the adapter's configured one
    vintage_first: int  # 0: the instruction's vintage
    vintage_last: int


@dataclass(frozen=True)
class Issuance:
    issuance_id: str
    issued: SerialRange
    share_of_proceeds: tuple[SerialRange, ...]  # empty when no whole unit is due
    omge: tuple[SerialRange, ...]


@dataclass(frozen=True)
class Instruction:
    instruction_id: str
    activity_id: str
    host_party: str
    vintage: int
    blocks: tuple[SerialRange, ...]
    authorization: AerAuthorization
    acquiring_registry: str
    acquiring_account: str
    issuance: Issuance

    @property
    def quantity(self) -> int:
        return unit_count(self.blocks)


def serials(first: int, last: int, what: str) -> SerialRange:
    """A serial range from untrusted numbers."""
    if not 0 <= first <= last <= SERIAL_MAX:
        raise Refusal(Code.SERIAL_RANGE_INVALID, f"{what}: {first}-{last}")
    return Block(first, last, None)


class Rounding(enum.Enum):
    """How a deduction's fraction of a unit is rounded (``[mechanism] deduction_rounding``)."""

    DOWN = "down"
    UP = "up"


def deductions(gross: int, rounding: Rounding = Rounding.DOWN) -> tuple[int, int]:
    """The share of proceeds and the OMGE cancellation of an issuance, in whole units."""
    assert gross > 0
    share = _percent(gross, SHARE_OF_PROCEEDS_PERCENT, rounding)
    omge = _percent(gross, OMGE_PERCENT, rounding)
    assert share + omge <= gross or rounding is Rounding.UP, (gross, share, omge)
    return share, omge


def _percent(quantity: int, percent: int, rounding: Rounding) -> int:
    if rounding is Rounding.UP:
        return -(-quantity * percent // 100)
    return quantity * percent // 100


def check(instruction: Instruction, today: date, rounding: Rounding = Rounding.DOWN) -> None:
    """Refuse an instruction that may not be forwarded (raise ``Refusal``)."""
    _check_form(instruction)
    _check_authorization(instruction)
    if not FIRST_VINTAGE <= instruction.vintage <= today.year:
        raise Refusal(
            Code.VINTAGE_IMPLAUSIBLE,
            f"vintage {instruction.vintage} is outside {FIRST_VINTAGE}-{today.year}",
        )
    overlaps = find_overlaps(instruction.blocks)
    if overlaps:
        left, right = overlaps[0]
        raise Refusal(Code.BLOCKS_OVERLAP, f"{_span(left)} and {_span(right)} overlap")
    check_issuance(instruction.issuance, rounding)
    _check_within_net(instruction)


def _check_form(instruction: Instruction) -> None:
    _require(INSTRUCTION_ID, instruction.instruction_id, "instruction_id")
    _require(ACTIVITY_ID, instruction.activity_id, "activity_id")
    check_party_code(instruction.host_party)
    check_year(instruction.vintage)
    if not instruction.blocks:
        raise Refusal(Code.REQUIRED_FIELD_MISSING, "no serials to forward")
    if len(instruction.blocks) > MAX_BLOCKS_PER_INSTRUCTION:
        raise Refusal(
            Code.TOO_MANY_BLOCKS,
            f"{len(instruction.blocks)} ranges, limit {MAX_BLOCKS_PER_INSTRUCTION}",
        )
    check_registry_id(instruction.acquiring_registry)
    check_account_id(instruction.acquiring_account)
    if account_registry(instruction.acquiring_account) != instruction.acquiring_registry:
        raise Refusal(
            Code.ACCOUNT_ID_INVALID,
            f"{instruction.acquiring_account} is not of {instruction.acquiring_registry}",
        )
    _require(ISSUANCE_ID, instruction.issuance.issuance_id, "issuance_id")


def _require(pattern: re.Pattern[str], value: str, what: str) -> None:
    if not pattern.fullmatch(value):
        raise Refusal(Code.REQUIRED_FIELD_MISSING, f"{what} {value!r} is missing or malformed")


def _check_authorization(instruction: Instruction) -> None:
    granted = instruction.authorization
    if granted.kind is AuthorizationKind.MITIGATION_CONTRIBUTION:
        raise Refusal(
            Code.A64ER_NOT_AUTHORIZED, "mitigation contribution A6.4ERs are not authorized"
        )
    if granted.kind is not AuthorizationKind.AUTHORIZED or not granted.authorization_id:
        raise Refusal(Code.A64ER_NOT_AUTHORIZED, "no authorization by the host Party")
    check_party_code(granted.authorizing_party)
    if granted.authorizing_party != instruction.host_party:
        raise Refusal(
            Code.A64ER_NOT_AUTHORIZED,
            f"authorized by {granted.authorizing_party}, not the host Party "
            f"{instruction.host_party}",
        )
    if granted.purpose is Purpose.UNSPECIFIED:
        raise Refusal(Code.A64ER_NOT_AUTHORIZED, "authorized for no purpose of use")
    if granted.cooperative_approach:
        check_cooperative_approach_id(granted.cooperative_approach)
    first, last = vintages(instruction)
    check_year(first)
    check_year(last)
    if not first <= instruction.vintage <= last:
        raise Refusal(
            Code.VINTAGE_OUTSIDE_AUTHORIZATION,
            f"vintage {instruction.vintage} outside {first}-{last}",
        )


def vintages(instruction: Instruction) -> tuple[int, int]:
    granted = instruction.authorization
    return (
        granted.vintage_first or instruction.vintage,
        granted.vintage_last or instruction.vintage,
    )


def check_issuance(issuance: Issuance, rounding: Rounding = Rounding.DOWN) -> None:
    """The deductions are the right quantities, inside the issuance, apart from each other."""
    gross = issuance.issued.unit_count
    share, omge = deductions(gross, rounding)
    for deducted, wanted, code, name in (
        (
            issuance.share_of_proceeds,
            share,
            Code.SHARE_OF_PROCEEDS_NOT_APPLIED,
            "share of proceeds",
        ),
        (issuance.omge, omge, Code.OMGE_NOT_APPLIED, "OMGE cancellation"),
    ):
        if unit_count(deducted) != wanted:
            raise Refusal(
                code, f"{name} of {unit_count(deducted)} units; {wanted} due on {gross} issued"
            )
        if subtract(list(deducted), [issuance.issued]):
            raise Refusal(
                code, f"{name} {_span(deducted[0])} outside issuance {_span(issuance.issued)}"
            )
    if find_overlaps([*issuance.share_of_proceeds, *issuance.omge]):
        raise Refusal(
            Code.BLOCKS_OVERLAP, "the share of proceeds and the OMGE cancellation overlap"
        )


def _check_within_net(instruction: Instruction) -> None:
    issuance = instruction.issuance
    outside = subtract(instruction.blocks, [issuance.issued])
    if outside:
        raise Refusal(
            Code.ISSUANCE_RECORD_CONFLICT,
            f"{_span(outside[0])} lies outside issuance {issuance.issuance_id}",
        )
    for deducted, code, name in (
        (issuance.share_of_proceeds, Code.SHARE_OF_PROCEEDS_NOT_APPLIED, "share of proceeds"),
        (issuance.omge, Code.OMGE_NOT_APPLIED, "OMGE cancellation"),
    ):
        if deducted and find_overlaps([*instruction.blocks, *deducted]):
            raise Refusal(code, f"serials of the {name} {_span(deducted[0])} cannot be forwarded")


def _span(block: Block[Any]) -> str:
    return f"{block.serial_first}-{block.serial_last}"


# --- what is sent to the hub ---------------------------------------------------------------


def unit_blocks(
    instruction: Instruction, registry_id: str, default_approach: str
) -> list[UnitBlock]:
    """The A6.4ERs as the mechanism registry records them in the hub's ledger."""
    granted = instruction.authorization
    unit = UnitAttributes(
        originating_registry=registry_id,
        vintage=instruction.vintage,
        cooperative_approach=granted.cooperative_approach or default_approach,
        first_transferring_party="",
        authorization_id=granted.authorization_id,
        purpose=granted.purpose,
        unit_kind=UnitKind.A64ER,
        state=UnitState.HELD,
        activity_id=instruction.activity_id,
        host_party=instruction.host_party,
    )
    return [block.with_attributes(unit) for block in sorted(instruction.blocks, key=_first)]


def grant(instruction: Instruction, default_approach: str) -> AuthorizationSpec:
    """The host Party's authorization as the hub records it."""
    granted = instruction.authorization
    first, last = vintages(instruction)
    return AuthorizationSpec(
        authorization_id=granted.authorization_id,
        authorizing_party=granted.authorizing_party,
        cooperative_approach=granted.cooperative_approach or default_approach,
        purpose=granted.purpose,
        quantity_cap=0,
        vintage_first=first,
        vintage_last=last,
    )


def _first(block: SerialRange) -> int:
    return block.serial_first
