"""Benchmarks: snapcheck against git and zstd on the same repository (`python -m benchmarks`)."""
