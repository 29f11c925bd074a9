"""The HTTP API and the composition root: settings, database, knowledge index and graph are wired here."""
