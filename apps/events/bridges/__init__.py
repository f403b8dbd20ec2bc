"""Inbound bridges: events that arrive other than through the tracking endpoints (a third
party's webhook, a Redis stream), ingested through the same path as /api/track."""
