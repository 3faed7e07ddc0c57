"""Typed application keys: how handlers reach the parts ``app.py`` built."""

from aiohttp import web

from appliance.config import AppConfig
from appliance.hub import Hub
from appliance.pipeline import Pipeline
from appliance.store.database import Database

CONFIG = web.AppKey("config", AppConfig)
HUB = web.AppKey("hub", Hub)
PIPELINE = web.AppKey("pipeline", Pipeline)
STARTED_AT = web.AppKey("started_at", float)
# Why the pose model is not running ("" when it is): shown in status so nobody mistakes the fallback.
MODEL_UNAVAILABLE = web.AppKey("model_unavailable", str)
# Opened by app.py's database context on startup, closed on cleanup; absent before startup.
DATABASE = web.AppKey("database", Database)
