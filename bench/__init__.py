"""Benchmarks: figures measured on this machine, never timed inside tests."""
