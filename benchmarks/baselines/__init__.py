"""Baseline servers measured beside the service in the same run (see benchmarks.scenarios)."""
