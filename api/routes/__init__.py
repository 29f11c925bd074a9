"""Route modules, one per resource."""

MAX_ID = 2**63 - 1
"""The largest id a database integer column holds: a larger one in a path or query is a 422, not a crash."""
