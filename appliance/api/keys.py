"""Typed application keys: how handlers reach the parts ``app.py`` built."""

from aiohttp import web

from appliance.config import AppConfig
from appliance.hub import Hub
from appliance.pipeline import Pipeline

CONFIG = web.AppKey("config", AppConfig)
HUB = web.AppKey("hub", Hub)
PIPELINE = web.AppKey("pipeline", Pipeline)
STARTED_AT = web.AppKey("started_at", float)
