"""The marketer's dashboard pages (server-rendered, htmx for the live parts)."""
