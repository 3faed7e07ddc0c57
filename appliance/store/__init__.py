"""Persistent state in one SQLite file in the data directory: history, events, person tracks, accounts and
the settings changed through the API.

``database`` owns the connection (one worker thread, WAL, per-part schema migrations); each other module
is one part's repository. Imports only the standard library, numpy and pydantic, plus
``appliance.contracts`` for what it stores.
"""
