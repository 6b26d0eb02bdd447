"""Benchmark scripts of the S3K suite; each writes CSV, JSON (with machine info) and PNG
results to ``benchmarks/results/``. Run them as modules, e.g. ``python -m
benchmarks.throughput``."""
