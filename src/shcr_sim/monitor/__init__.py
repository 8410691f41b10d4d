"""Heartbeats, metrics, alerts and the dashboard (never on the hot path)."""
