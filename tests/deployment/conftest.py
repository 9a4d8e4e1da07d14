"""The deployment tests: see ``pytest_collection_modifyitems`` in tests/conftest.py, which
skips whatever is marked ``deployment`` unless ``make e2e-deployment`` runs it."""
