"""Benchmarks: `make bench` writes bench/results/*.json and bench/REPORT.md."""
