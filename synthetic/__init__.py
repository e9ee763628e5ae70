"""Synthetic data for the demo, benchmarks and tests, not part of the platform: deterministic (per seed)
institutions, residents and records shaped like what Xinyang institutions hold, with the defects they inject."""
