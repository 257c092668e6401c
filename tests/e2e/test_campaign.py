"""The short crash campaign: real processes killed with SIGKILL while transfers stream among
three registries, then every invariant. ``make campaign`` runs the long one."""

from __future__ import annotations

from pathlib import Path

from campaign.__main__ import report
from campaign.run import Campaign, Settings


def test_a_short_campaign_keeps_every_invariant(tmp_path: Path) -> None:
    settings = Settings(seed=7, transfers=240, kills=8, folder=tmp_path, progress=lambda _: None)
    figures = Campaign(settings).run()
    print(report(settings, figures))
    assert figures.failures == []
    assert sum(figures.kills.values()) == 8
    assert figures.proposed >= 240
    assert figures.invariants >= 20
