"""Fuzzing the hub: hostile bytes and hostile content at every entry point (``make fuzz``)."""
