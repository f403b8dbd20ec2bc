"""The consents app's models, one module per concern."""
