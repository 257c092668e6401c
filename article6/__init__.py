"""The Article 6 shared protocol library: envelopes, keys, identifiers, serial blocks,
response codes and TLS helpers, used by the hub and by every registry.

Generated wire types live in ``article6.v1`` (from ``protos/``).
"""
