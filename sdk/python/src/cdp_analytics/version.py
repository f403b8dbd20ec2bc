"""The SDK's version, sent as context.library.version with every event."""

VERSION = "0.1.0"
LIBRARY_NAME = "cdp-analytics-python"
