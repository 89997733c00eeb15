"""Server fixtures: each module here is a pytest plugin (loaded by tests/conftest.py) and may
define ``CONTRACT_SPECS``, the contract-suite entries for its backend."""
