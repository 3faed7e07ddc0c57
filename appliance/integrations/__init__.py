"""The sinks: everything that takes the hub's messages out of the process.

``base`` (the ``Sink`` contract, its ``SinkStats`` and a ``Backoff``), ``runner`` (builds nothing itself: it
enters the sinks ``app.py`` built, in order, restarts one that fails and reports them all), and one module or
folder per sink (``history``, ``websocket``, ...), each owning its settings model, which ``config.py``
composes into the configuration.

A sink knows the hub and the contracts, and the store where it keeps things; never ``csi``, ``pose``,
``pipeline``, ``config`` or ``api``.
"""
