"""The hub: checks, transaction lifecycle, ledger, outbox, reconciliation (issue 3 onward)."""
