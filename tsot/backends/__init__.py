"""Backends: one module each, bytes in and bytes out; drivers are imported lazily."""
