"""The chaos month (``make chaos``): chaos/month.py says what it does."""
