"""The example Django project: everything a Django site caches, on tsot."""
