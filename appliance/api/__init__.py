"""The HTTP side: aiohttp routes under ``/api/v1``, one JSON error shape, and the static web UI.

Reads the pipeline, hub and configuration through the application keys in ``keys``; never reaches into a
source or a sink directly.
"""
