"""Arus: a double-entry ledger for money that must never drift."""

__version__ = "0.1.0"
