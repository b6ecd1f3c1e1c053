"""Benchmarks of hippo: capture overhead, lineage storage, query latency, memory.

Everything is reproducible by ``make bench`` (``python -m bench.run``); the data it
generates lives under ``bench/data/`` and ``bench/work/`` and is never committed.
"""
