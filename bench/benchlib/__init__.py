"""The netprov benchmark harness (stdlib only): sandbox, drivers, report.

Everything runs inside network namespaces the harness creates; see docs/benchmarks.md.
"""
