"""The crash campaign: transfers under SIGKILL, then every invariant checked (``make campaign``)."""
