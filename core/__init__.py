"""Settings, domain types, errors and ports: the bottom layer every other package builds on."""
