"""Matchers: one module per kind of rule matcher."""
