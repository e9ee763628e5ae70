"""Adapters: read an institution's exchange database by watermark and publish its rows as events."""
