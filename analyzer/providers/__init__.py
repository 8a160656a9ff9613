"""Metric providers: one module each."""
