"""The support graph: its state schema and build_support_graph()."""
