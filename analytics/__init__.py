"""Metrics, journeys and attribution over the event log."""
