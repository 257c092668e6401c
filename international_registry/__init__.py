"""The international registry (IR) of the secretariat, with its additional registry services
(ARS): Party sections opened provisionally and verified, accounts in them, and the Article 6
actions proposed through the hub like any registry's. Built on ``article6.node``."""
