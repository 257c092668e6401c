"""`make demo`: the whole network on loopback, through a realistic scenario."""
