"""The Article 6 rules that need no storage: purposes, first-transfer events, what a
transaction first transfers, what completing it does to units, account types, DES statuses."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from article6 import holdings
from article6.account_types import check_source, check_target
from article6.blocks import Block
from article6.codes import Code, Refusal
from article6.model import (
    AccountType,
    AuthorizationSpec,
    FirstTransferSpec,
    FirstTransferTrigger,
    Held,
    Holder,
    Purpose,
    Status,
    TransactionSpec,
    TransactionType,
    UnitAttributes,
    UnitKind,
    UnitState,
    UseDetails,
)

P = Purpose
F = FirstTransferTrigger
GHA = Holder("GHA01", "GHA01-1001-57")
OUTCOME = UnitAttributes("GHA01", 2024, "CA0001", "", "GHA-A1", P.OIMP, UnitKind.MITIGATION_OUTCOME,
                         UnitState.HELD)  # fmt: skip


def grant(purpose: Purpose, definition: FirstTransferTrigger) -> AuthorizationSpec:
    return AuthorizationSpec("GHA-A1", "GHA", "CA0001", purpose, 0, 2021, 2030, definition)


@pytest.mark.parametrize(
    ("authorized", "use", "allowed"),
    [
        (P.NDC, P.NDC, True), (P.NDC, P.OIMP, False), (P.OIMP, P.IMP, True),
        (P.IMP, P.OP, False), (P.NDC_AND_OP, P.OP, True), (P.NDC_AND_OP, P.IMP, False),
        (P.NDC_AND_OIMP, P.OIMP, True), (P.IMP, P.OIMP, True), (P.NDC, P.NDC_AND_OIMP, False),
        (P.UNSPECIFIED, P.NDC, False),
    ],
)  # fmt: skip
def test_a_use_is_allowed_for_the_purposes_authorized(
    authorized: Purpose, use: Purpose, allowed: bool
) -> None:
    assert authorized.allows(use) is allowed


@pytest.mark.parametrize(
    ("purpose", "definition", "events"),
    [
        (P.NDC, F.UNSPECIFIED, {F.INTERNATIONAL_TRANSFER}),
        (P.OIMP, F.ISSUANCE, {F.ISSUANCE}),
        (P.NDC_AND_IMP, F.USE_OR_CANCELLATION, {F.INTERNATIONAL_TRANSFER, F.USE_OR_CANCELLATION}),
        (P.OP, F.AUTHORIZATION, {F.AUTHORIZATION}),
    ],
)  # fmt: skip
def test_the_authorization_says_which_events_first_transfer(
    purpose: Purpose, definition: FirstTransferTrigger, events: set[FirstTransferTrigger]
) -> None:
    assert grant(purpose, definition).first_transfer_at == events


def spec(kind: TransactionType, **fields: object) -> TransactionSpec:
    values: dict[str, object] = {
        "transaction_id": "GHA01-1", "type": kind, "transferring_registry": "GHA01",
        "transferring_account": GHA.account_id, "acquiring_registry": "GHA01",
        "acquiring_account": "", "blocks": (Block(1, 100, OUTCOME),), "quantity": 100,
    }  # fmt: skip
    values.update(fields)
    return TransactionSpec(**values)  # type: ignore[arg-type]


def test_binding_under_a_definition_of_authorization_first_transfers_the_outcomes() -> None:
    issued = UnitAttributes(
        "GHA01", 2024, "", "", "", P.UNSPECIFIED, UnitKind.MITIGATION_OUTCOME, UnitState.HELD
    )
    unbound = Block(1, 100, issued)
    binding = spec(TransactionType.AUTHORIZATION, blocks=(unbound,),
                   authorization=grant(P.OIMP, F.AUTHORIZATION))  # fmt: skip
    assert binding.first_transferred() == {"GHA-A1": 100}
    after = holdings.completion(binding)(Held(GHA, unbound.attributes)).unit
    assert (after.unit_kind, after.first_transferring_party, after.purpose) == (
        UnitKind.ITMO, "GHA", P.OIMP,
    )  # fmt: skip
    ndc = spec(TransactionType.AUTHORIZATION, blocks=(unbound,),
               authorization=grant(P.NDC, F.UNSPECIFIED))  # fmt: skip
    assert ndc.first_transferred() == {}
    assert holdings.completion(ndc)(Held(GHA, unbound.attributes)).unit.unit_kind is (
        UnitKind.MITIGATION_OUTCOME
    )


def test_a_use_that_is_the_first_transfer_leaves_used_itmos() -> None:
    use = spec(TransactionType.USE, use=UseDetails("GHA", 0, P.OIMP),
               first_transfer=FirstTransferSpec("GHA", F.USE_OR_CANCELLATION))  # fmt: skip
    assert use.first_transferred() == {"GHA-A1": 100}
    after = holdings.completion(use)(Held(GHA, OUTCOME)).unit
    assert (after.unit_kind, after.state, after.first_transferring_party) == (
        UnitKind.ITMO, UnitState.USED, "GHA",
    )  # fmt: skip
    plain = spec(TransactionType.USE, use=UseDetails("GHA", 0, P.OIMP))
    assert plain.first_transferred() == {}


def test_account_types_allow_what_their_purpose_says() -> None:
    check_source(TransactionType.EXTERNAL_TRANSFER, "A", AccountType.HOLDING)
    check_target(TransactionType.USE, "A", AccountType.NDC_USE, P.NDC)
    check_target(TransactionType.USE, "A", AccountType.OIMP_USE, P.IMP)
    check_target(TransactionType.VOLUNTARY_CANCELLATION, "A", AccountType.VOLUNTARY_CANCELLATION,
                 None)  # fmt: skip
    refusals: list[Callable[[], None]] = [
        lambda: check_source(TransactionType.EXTERNAL_TRANSFER, "A", AccountType.NDC_USE),
        lambda: check_target(TransactionType.USE, "A", AccountType.OIMP_USE, P.NDC),
        lambda: check_target(TransactionType.EXTERNAL_TRANSFER, "A", AccountType.NDC_USE, None),
        lambda: check_target(TransactionType.CANCELLATION, "A", AccountType.HOLDING, None),
    ]
    for refused in refusals:
        with pytest.raises(Refusal) as refusal:
            refused()
        assert refusal.value.code is Code.ACCOUNT_TYPE_NOT_ALLOWED


def test_a_registry_terminates_on_the_hubs_discrepancy_and_the_acquirers_rejection() -> None:
    assert Status.CHECKED_DISCREPANCY.registry_outcome is Status.TERMINATED
    assert Status.REJECTED.registry_outcome is Status.TERMINATED
    assert Status.CANCELLED.registry_outcome is Status.CANCELLED
    assert Status.COMPLETED.registry_outcome is Status.COMPLETED
    assert not Status.CHECKED_DISCREPANCY.final
    assert {s for s in Status if s.final} == {
        Status.COMPLETED, Status.TERMINATED, Status.REJECTED, Status.CANCELLED
    }  # fmt: skip
