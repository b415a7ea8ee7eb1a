"""family_finance: a tiny household-finance app, the first consumer of Arus.

It keeps its own transactions and balances in its own store (a SQLite file, or any database
SQLAlchemy can reach) and mirrors every change into an Arus ledger through `arus_client.shadow`:
the mirror is queued in the app's own transaction and sent later by `drain`, so the ledger
can be down without the app noticing. See docs/walkthrough-shadow-write.md.

    python -m examples.family_finance --help
"""
