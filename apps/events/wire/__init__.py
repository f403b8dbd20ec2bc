"""Wire formats: each parses its own request shape into IncomingEvents."""
