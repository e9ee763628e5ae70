"""Benchmarks: each measures the project's path and its plain baseline side by side in one run."""
