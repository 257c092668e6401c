"""The reference registry's own rules, on its own SQLite database."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine

from article6.blocks import Block, serial_range
from article6.codes import Code, Refusal
from article6.identifiers import format_account_id
from article6.keys import SigningKey
from article6.model import AccountType, Status, TransactionType
from article6.node import store
from article6.node.engine import Proposal, RegistryEngine
from article6.unit import Unit
from article6.v1 import transaction_pb2, units_pb2
from party_registry_stub import accounts
from tests.builders import GHA_ACCOUNT, block, external, issuance, transaction

T = transaction_pb2


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = store.open_database(f"sqlite:///{tmp_path / 'registry.db'}", accounts.metadata)
    yield engine
    engine.dispose()


def registry(registry_id: str) -> RegistryEngine:
    rules = accounts.AccountRules(registry_id)
    return RegistryEngine(registry_id, "HUB", SigningKey.generate(), rules)


def within(engine: Engine, work: object) -> object:
    assert callable(work)
    with engine.begin() as connection:
        return work(connection)


def units(connection: Connection, registry_id: str) -> list[tuple[str, int, int, int]]:
    return [
        (b.attributes.holder.account_id, b.serial_first, b.serial_last, b.attributes.unit.state)
        for b in store.all_holdings(connection, registry_id)
    ]


@pytest.mark.parametrize(
    ("setup", "code"),
    [
        ("no account", Code.ACQUIRING_ACCOUNT_NOT_FOUND),
        ("closed", Code.ACCOUNT_CLOSED),
        ("other approach", Code.COOPERATIVE_APPROACH_MISMATCH),
        ("open", None),
    ],
)
def test_an_acquisition_is_accepted_only_into_an_open_linked_account(
    engine: Engine, setup: str, code: Code | None
) -> None:
    che = registry("CHE01")
    with engine.begin() as connection:
        if setup != "no account":
            approaches = frozenset({"CA0002" if setup == "other approach" else "CA0001"})
            account = accounts.open_account(connection, "CHE01", AccountType.HOLDING, approaches)
            assert account == format_account_id("CHE01", 1001)
        if setup == "closed":
            assert accounts.close_account(connection, account)
        decision, results = che.acquisition(connection, external("GHA01-2", 1, 10))
        assert [c for c, _ in results] == ([code] if code else [])
        assert decision is (Status.REJECTED if code else Status.ACCEPTED)
        assert units(connection, "CHE01") == []  # nothing is credited before completion


def test_a_completion_is_applied_exactly_once_however_often_it_arrives(engine: Engine) -> None:
    che = registry("CHE01")
    with engine.begin() as connection:
        accounts.open_account(connection, "CHE01", AccountType.HOLDING, frozenset({"CA0001"}))
        transfer = external("GHA01-2", 1, 10)
        che.acquisition(connection, transfer)
        for _ in range(3):  # notice, repeated notice, status query answer
            che.settle(Unit(connection), transfer, Status.COMPLETED)
        assert units(connection, "CHE01") == [(format_account_id("CHE01", 1001), 1, 10, 1)]
        che.settle(Unit(connection), transfer, Status.CANCELLED)  # a final status never changes
        assert store.get_transaction(connection, "GHA01-2").status is Status.COMPLETED  # type: ignore[union-attr]


def test_a_settled_status_is_logged_once_committed_and_never_when_rolled_back(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "registry")
    che = registry("CHE01")
    with engine.begin() as connection:
        accounts.open_account(connection, "CHE01", AccountType.HOLDING, frozenset({"CA0001"}))
        transfer = external("GHA01-2", 1, 10)
        che.acquisition(connection, transfer)
        unit = Unit(connection)

        def settled_then_failed() -> None:
            with unit.savepoint():
                che.settle(unit, transfer, Status.COMPLETED)
                raise RuntimeError("the change fails after settling")

        with pytest.raises(RuntimeError):
            settled_then_failed()
        che.settle(unit, transfer, Status.COMPLETED)
        assert not caplog.records  # not committed yet
    for action in unit.take_actions():
        action()
    assert [r.getMessage() for r in caplog.records] == ["GHA01-2 COMPLETED"]


def test_a_proposal_locks_its_units_until_the_final_status(engine: Engine) -> None:
    gha = registry("GHA01")
    with engine.begin() as connection:
        account = accounts.open_account(connection, "GHA01", AccountType.HOLDING)
        assert account == GHA_ACCOUNT
        gha.settle(Unit(connection), issuance("GHA01-900", 1, 100), Status.COMPLETED)
        transfer = Proposal(
            TransactionType.EXTERNAL_TRANSFER, account, "CHE01", "CHE01-1001-30",
            ranges=[serial_range(1, 50)],
        )  # fmt: skip
        transaction_id = gha.propose(Unit(connection), transfer)
        with pytest.raises(Refusal) as refusal:
            gha.propose(Unit(connection), transfer)
        assert refusal.value.code is Code.UNITS_LOCKED
        message = T.Transaction.FromString(
            store.get_transaction(connection, transaction_id).body  # type: ignore[union-attr]
        )
        assert list(message.blocks) == [block(1, 50)]  # attributes filled in from holdings
        gha.settle(
            Unit(connection), message, Status.REJECTED, [(Code.ACQUIRING_ACCOUNT_NOT_FOUND, "")]
        )
        local = store.get_transaction(connection, transaction_id)
        assert local is not None
        assert local.status is Status.TERMINATED  # DES: a registry told 6 terminates
        assert units(connection, "GHA01") == [(account, 1, 100, 1)]
        second = gha.propose(Unit(connection), transfer)  # released, so it can be proposed again
        gha.settle(Unit(connection), T.Transaction.FromString(
            store.get_transaction(connection, second).body), Status.COMPLETED)  # type: ignore[union-attr]  # fmt: skip
        assert units(connection, "GHA01") == [(account, 51, 100, 1)]


def test_units_not_held_cannot_be_proposed(engine: Engine) -> None:
    gha = registry("GHA01")
    with engine.begin() as connection:
        account = accounts.open_account(connection, "GHA01", AccountType.HOLDING)
        gha.settle(Unit(connection), issuance("GHA01-900", 1, 100), Status.COMPLETED)
        beyond = Proposal(
            TransactionType.EXTERNAL_TRANSFER, account, "CHE01", "CHE01-1001-30",
            ranges=[serial_range(90, 110)],
        )  # fmt: skip
        with pytest.raises(Refusal) as refusal:
            gha.propose(Unit(connection), beyond)
        assert refusal.value.code is Code.UNITS_NOT_HELD


def test_serials_held_in_two_spaces_must_name_their_originating_registry(engine: Engine) -> None:
    che = registry("CHE01")
    with engine.begin() as connection:
        account = accounts.open_account(connection, "CHE01", AccountType.HOLDING)
        arriving = external("GHA01-5", 1, 100, acquiring_account=account)
        che.settle(Unit(connection), arriving, Status.COMPLETED)  # GHA01:1-100 arrives too

        def propose(*ranges: Block[str] | Block[None]) -> str:
            return che.propose(Unit(connection), Proposal(
                TransactionType.EXTERNAL_TRANSFER, account, "GHA01", GHA_ACCOUNT, ranges=ranges
            ))  # fmt: skip

        own = transaction("CHE01-901", T.TRANSACTION_TYPE_ISSUANCE, [block(1, 100, space="CHE01")],
                          sender="CHE01", source="", target=account)  # fmt: skip
        che.settle(Unit(connection), own, Status.COMPLETED)  # CHE01:1-100 is held too
        with pytest.raises(Refusal) as refusal:
            propose(serial_range(1, 10))
        assert refusal.value.code is Code.REQUIRED_FIELD_MISSING
        assert "of CHE01, GHA01: name one, e.g. CHE01:1-10" in refusal.value.detail
        transaction_id = propose(Block(1, 10, "GHA01"))
        message = T.Transaction.FromString(
            store.get_transaction(connection, transaction_id).body  # type: ignore[union-attr]
        )
        assert [b.originating_registry for b in message.blocks] == ["GHA01"]


def test_each_account_is_used_only_as_its_type_allows(engine: Engine) -> None:
    gha = registry("GHA01")
    with engine.begin() as connection:
        holding = accounts.open_account(connection, "GHA01", AccountType.HOLDING, frozenset())
        ndc = accounts.open_account(connection, "GHA01", AccountType.NDC_USE, frozenset())
        voluntary = accounts.open_account(
            connection, "GHA01", AccountType.VOLUNTARY_CANCELLATION, frozenset()
        )
        issued = issuance("GHA01-900", 1, 100)
        issued.acquiring_account = holding
        gha.settle(Unit(connection), issued, Status.COMPLETED)
        oimp = T.UseDetails(using_party="GHA", purpose=units_pb2.PURPOSE_OIMP)
        ndc_use = T.UseDetails(using_party="GHA", year_of_use=2030, purpose=units_pb2.PURPOSE_NDC)
        refused = [
            Proposal(TransactionType.USE, holding, "GHA01", ndc, [serial_range(1, 10)], use=oimp),
            Proposal(TransactionType.VOLUNTARY_CANCELLATION, holding, "GHA01", ndc,
                     [serial_range(1, 10)], use=oimp),
            Proposal(TransactionType.INTERNAL_TRANSFER, holding, "GHA01", voluntary,
                     [serial_range(1, 10)]),
        ]  # fmt: skip
        for proposal in refused:
            with pytest.raises(Refusal) as refusal:
                gha.propose(Unit(connection), proposal)
            assert refusal.value.code is Code.ACCOUNT_TYPE_NOT_ALLOWED, proposal
        used = Proposal(TransactionType.USE, holding, "GHA01", ndc, [serial_range(1, 10)],
                        use=ndc_use)  # fmt: skip
        assert gha.propose(Unit(connection), used).startswith("GHA01-")
        cancelled = Proposal(TransactionType.VOLUNTARY_CANCELLATION, holding, "GHA01", voluntary,
                             [serial_range(11, 20)], use=oimp)  # fmt: skip
        assert gha.propose(Unit(connection), cancelled).startswith("GHA01-")
    # Units arrive only in holding accounts.
    che = registry("CHE01")
    with engine.begin() as connection:
        target = accounts.open_account(connection, "CHE01", AccountType.NDC_USE, frozenset())
        decision, results = che.acquisition(
            connection, external("GHA01-77", 1, 10, acquiring_account=target)
        )
        assert (decision, [code for code, _ in results]) == (
            Status.REJECTED, [Code.ACCOUNT_TYPE_NOT_ALLOWED]
        )  # fmt: skip
