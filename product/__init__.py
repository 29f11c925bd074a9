"""The composition root without HTTP: opens the database, index, model, graph and services for every entry point."""
