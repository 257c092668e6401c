"""A reference national (Party) registry: the shared registry machinery of ``article6.node``
with accounts (``accounts``) and an operator command line (``__main__``). A Party can copy it,
or test its own registry against it."""
