"""A test project with django-debug-toolbar installed (tests/django/test_toolbar.py)."""
