"""Baseline programs, run in their own process by the benchmarks."""
