"""Synthetic sources: deterministic (per seed) data shaped like what Xinyang institutions hold."""
