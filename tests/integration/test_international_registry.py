"""The international registry's Party sections, accounts and provisional-status policy."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine

from article6.aef.check import check_workbook
from article6.aef.prefill import materialized
from article6.aef.workbook import write_workbook
from article6.blocks import serial_range
from article6.codes import Code, Refusal
from article6.keys import SigningKey
from article6.model import AccountType, Status, TransactionType
from article6.node import store
from article6.node.engine import Proposal, RegistryEngine
from article6.unit import Unit
from article6.v1 import transaction_pb2, units_pb2
from international_registry import aef, sections
from international_registry.rules import SectionRules
from tests.builders import block, transaction

IR = "UNIR"
T = transaction_pb2


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = store.open_database(f"sqlite:///{tmp_path / 'ir.db'}", sections.metadata)
    yield engine
    engine.dispose()


def ir(provisional_may: tuple[str, ...] | None = None) -> RegistryEngine:
    rules = SectionRules(IR) if provisional_may is None else SectionRules(IR, provisional_may)
    return RegistryEngine(IR, "HUB", SigningKey.generate(), rules)


def open_section(connection: Connection, party: str, verified: bool = False) -> str:
    """Open ``party``'s section through the whole lifecycle; return a holding account."""
    request = sections.submit_request(
        connection, party, "National focal point", sections.FocalPoint.NATIONAL,
        ["Administrator A", "Administrator B"], ["nomination letter"],
    )  # fmt: skip
    sections.decide_request(connection, request, valid=True)
    assert sections.open_section(connection, request) == party
    assert sections.section_status(connection, party) is sections.SectionStatus.PROVISIONAL
    if verified:
        sections.verify_section(connection, party)
    return sections.open_account(
        connection, IR, party, AccountType.HOLDING, cooperative_approaches=frozenset({"CA0001"})
    )


def hold(
    registry: RegistryEngine, connection: Connection, account: str, first: int, last: int
) -> None:
    """Credit units to ``account`` as a completed issuance would."""
    issued = [block(first, last, space=IR)]
    message = transaction(
        f"{IR}-9{first}", T.TRANSACTION_TYPE_ISSUANCE, issued, sender=IR, source="", target=account
    )
    registry.settle(Unit(connection), message, Status.COMPLETED)


def offered_to(account: str) -> transaction_pb2.Transaction:
    """CHE01 transfers serials 1-10 to ``account`` of the IR."""
    return transaction(
        "CHE01-5", T.TRANSACTION_TYPE_EXTERNAL_TRANSFER, [block(1, 10)], sender="CHE01",
        source="CHE01-1001-30", acquirer=IR, target=account,
    )  # fmt: skip


def transfer(source: str, first: int, last: int) -> Proposal:
    return Proposal(
        TransactionType.EXTERNAL_TRANSFER, source, "CHE01", "CHE01-1001-30",
        ranges=[serial_range(first, last)],
    )  # fmt: skip


def test_a_section_opens_only_along_its_lifecycle(engine: Engine) -> None:
    with engine.begin() as connection:
        request = sections.submit_request(
            connection, "SGP", "NFP", sections.FocalPoint.ADDITIONAL, ["A"], []
        )
        assert request == "REQ-0001"
        with pytest.raises(sections.SectionError, match="not validated"):
            sections.open_section(connection, request)
        with pytest.raises(sections.SectionError, match="reason"):
            sections.decide_request(connection, request, valid=False)
        sections.decide_request(connection, request, valid=True)
        with pytest.raises(sections.SectionError, match="already validated"):
            sections.decide_request(connection, request, valid=True)
        with pytest.raises(sections.SectionError, match="no open section"):
            sections.open_account(connection, IR, "SGP", AccountType.HOLDING)
        sections.open_section(connection, request)
        with pytest.raises(sections.SectionError, match="already open"):
            sections.open_section(connection, request)
        account = sections.open_account(connection, IR, "SGP", AccountType.HOLDING, ars=True)
        found = sections.get_account(connection, account)
        assert found is not None
        assert (found.party, found.ars, found.holder) == ("SGP", True, "SGP")
        sections.verify_section(connection, "SGP")
        assert sections.section_status(connection, "SGP") is sections.SectionStatus.VERIFIED
        with pytest.raises(sections.SectionError, match="not provisionally open"):
            sections.verify_section(connection, "SGP")
        rejected = sections.submit_request(connection, "KEN", "NFP", sections.FocalPoint.NATIONAL,
                                           ["A"], [])  # fmt: skip
        sections.decide_request(connection, rejected, valid=False, reason="no nomination letter")
        with pytest.raises(sections.SectionError, match="rejected"):
            sections.open_section(connection, rejected)


def test_a_provisional_section_holds_and_acquires_but_disposes_of_nothing(
    engine: Engine,
) -> None:
    registry = ir()
    with engine.begin() as connection:
        account = open_section(connection, "SGP")
        incoming = offered_to(account)
        assert registry.acquisition(connection, incoming) == (Status.ACCEPTED, [])
        hold(registry, connection, account, 1, 100)
        for proposal in (
            transfer(account, 1, 10),
            Proposal(TransactionType.CANCELLATION, account, IR, "", [serial_range(1, 10)]),
        ):
            with pytest.raises(Refusal) as refusal:
                registry.propose(Unit(connection), proposal)
            assert refusal.value.code is Code.SECTION_PROVISIONAL
        sections.verify_section(connection, "SGP")
        assert registry.propose(Unit(connection), transfer(account, 1, 10)).startswith(f"{IR}-")


def test_the_provisional_policy_is_configurable_both_ways(engine: Engine) -> None:
    with engine.begin() as connection:
        account = open_section(connection, "SGP")
        strict, permissive = ir(provisional_may=()), ir(provisional_may=("acquire", "transfer"))
        incoming = offered_to(account)
        decision, results = strict.acquisition(connection, incoming)
        assert (decision, [code for code, _ in results]) == (
            Status.REJECTED,
            [Code.SECTION_PROVISIONAL],
        )
        hold(permissive, connection, account, 1, 100)
        assert permissive.propose(Unit(connection), transfer(account, 1, 10)).startswith(f"{IR}-")
    with pytest.raises(ValueError, match="unknown actions"):
        SectionRules(IR, ("fly",))


def test_a_first_international_transfer_inside_the_ir_goes_to_another_party(
    engine: Engine,
) -> None:
    registry = ir()
    with engine.begin() as connection:
        open_section(connection, "SGP", verified=True)
        other = open_section(connection, "CHE", verified=True)
        mine = sections.open_account(connection, IR, "SGP", AccountType.HOLDING)
        own = sections.open_account(connection, IR, "SGP", AccountType.HOLDING, ars=True)
        outcomes = block(1, 100, space=IR, unit_kind=units_pb2.UNIT_KIND_MITIGATION_OUTCOME,
                         first_transferring_party="", authorization_id="SGP-A1")  # fmt: skip
        message = transaction(f"{IR}-900", T.TRANSACTION_TYPE_ISSUANCE, [outcomes], sender=IR,
                              source="", target=own)  # fmt: skip
        registry.settle(Unit(connection), message, Status.COMPLETED)
        first = T.FirstTransfer(
            first_transferring_party="SGP",
            trigger=T.FIRST_TRANSFER_TRIGGER_INTERNATIONAL_TRANSFER,
        )

        def first_transfer(target: str) -> Proposal:
            return Proposal(TransactionType.FIRST_TRANSFER, own, IR, target,
                            [serial_range(1, 10)], first_transfer=first)  # fmt: skip

        with pytest.raises(Refusal) as refusal:
            registry.propose(Unit(connection), first_transfer(mine))
        assert refusal.value.code is Code.FIRST_TRANSFER_TRIGGER_INVALID
        assert registry.propose(Unit(connection), first_transfer(other)).startswith(f"{IR}-")
        # Outcomes are first transferred from the ARS, into an IR account (4014).
        with pytest.raises(Refusal) as refusal:
            registry.propose(
                Unit(connection),
                first_transfer(
                    sections.open_account(connection, IR, "CHE", AccountType.HOLDING, ars=True)
                ),
            )
        assert refusal.value.code is Code.ACCOUNT_TYPE_NOT_ALLOWED


def test_the_aef_workbook_of_a_section_holds_every_action_and_checks_clean(
    engine: Engine, tmp_path: Path
) -> None:
    """An acquisition from another Party, ITMOs from A6.4ERs, and a transfer on: the rows the
    AEF expects, with ids that pass its checks (A6.4ERs: GHA64 and their own serials)."""
    registry = ir()
    with engine.begin() as connection:
        account = open_section(connection, "SGP", verified=True)
        registry.settle(Unit(connection), transaction(
            "CHE01-5", T.TRANSACTION_TYPE_EXTERNAL_TRANSFER, [block(1, 10)], sender="CHE01",
            source="CHE01-1001-30", acquirer=IR, target=account,
        ), Status.COMPLETED)  # fmt: skip
        aers = [block(1, 930, space="A64MR", cooperative_approach="CA6400", vintage=2025)]
        registry.settle(Unit(connection), transaction(
            "A64MR-7", T.TRANSACTION_TYPE_FIRST_TRANSFER, aers, sender="A64MR",
            source="A64MR-1-xx", acquirer=IR, target=account,
            first_transfer=T.FirstTransfer(
                first_transferring_party="GHA",
                trigger=T.FIRST_TRANSFER_TRIGGER_INTERNATIONAL_TRANSFER,
            ),
        ), Status.COMPLETED)  # fmt: skip
        for number, (first, purpose) in enumerate([(1, "NDC"), (2, "OIMP")], start=1):
            use = T.UseDetails(using_party="SGP", year_of_use=2030,
                               purpose=units_pb2.Purpose.Value(f"PURPOSE_{purpose}"))  # fmt: skip
            registry.settle(Unit(connection), transaction(
                f"{IR}-{number}", T.TRANSACTION_TYPE_USE,
                [block(first, first, state=units_pb2.UNIT_STATE_USED)],
                sender=IR, source=account, use=use,
            ), Status.COMPLETED)  # fmt: skip
        year = datetime.now(UTC).year
        tables = materialized(aef.workbook(connection, IR, "SGP", year, "SGP00"))
    actions = tables["actions"]
    assert [(r["action_type"], r["first_id"], r["last_id"], r["quantity"]) for r in actions] == [
        ("Acquisition", "CA0001-GHA01-GHA-1-2024", "CA0001-GHA01-GHA-10-2024", 10),
        ("Acquisition", "CA6400-GHA64-GHA-1-2025", "CA6400-GHA64-GHA-930-2025", 930),
        ("Use", "CA0001-GHA01-GHA-1-2024", "CA0001-GHA01-GHA-1-2024", 1),
        ("Use", "CA0001-GHA01-GHA-2-2024", "CA0001-GHA01-GHA-2-2024", 1),
    ]
    # A use towards the NDC is its subtype; a use for OIMP says so in the purpose column.
    assert [(r["action_subtype"], r["purpose"], r["using_party"], r["year_of_use"])
            for r in actions[2:]] == [("Use towards NDC", "", "SGP", 2030),
                                      ("", "OIMP", "SGP", 2030)]  # fmt: skip
    assert (actions[1]["unit_registry"], actions[1]["first_unit_id"]) == ("A64MR", "A64MR-1")
    # Holdings are replayed from the actions, and listed in the order of their ids.
    assert [(r["first_id"], r["quantity"]) for r in tables["holdings"]] == [
        ("CA0001-GHA01-GHA-3-2024", 8), ("CA6400-GHA64-GHA-1-2025", 930)
    ]  # fmt: skip
    summary = {row["item"]: row["value"] for row in tables["summary"]}
    assert (summary["Actions: Acquisition"], summary["Actions: Use"]) == (2, 2)
    path = tmp_path / "SGP.xlsx"
    write_workbook(path, tables)
    assert check_workbook(path) == []
