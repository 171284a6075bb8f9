"""Benchmarks: each comparison is one script, run as `python -m benchmarks.<name>`.

Results (JSON + Markdown) are written to, and committed in, benchmarks/results/.
"""
