"""Interop tests: drive the reference implementation (slim-bindings) against our code."""
