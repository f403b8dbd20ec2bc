"""Benchmarks: `make bench` (`python -m tests.bench`) runs each module's main().

Results and the commands that produced them are in docs/benchmarks.md.
"""
