"""What every registry connected to the hub does the same way, shared by the registries in
this repository (the reference Party registry, the international registry, the mechanism
registry adapter): its books (holdings in canonical form, transactions, inbox, outbox), the
rules of proposing and of applying the hub's outcomes exactly once, the ``Registry`` service,
the sender with recovery, metrics, and the process. What differs between registries (their
accounts, what they accept, what they may propose) comes in through ``engine.Rules``.
"""
