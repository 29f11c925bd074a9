"""Evaluation suites, evaluators and the runner."""
