"""The store backends (SQLite, pynamodb in moto, pynamodb on moto's server) come from tests/conftest.py."""
