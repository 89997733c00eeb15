"""Backends: a module or a package each, bytes in and bytes out; drivers are imported lazily."""
