"""Maintenance tools for the repository itself (locking, checks); no stage imports them."""
