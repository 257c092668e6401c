"""A reference national (Party) registry and conformance aid."""
