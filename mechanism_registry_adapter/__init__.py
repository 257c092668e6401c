"""Adapter connecting the Article 6.4 mechanism registry to the hub."""
