"""The MQTT sink, with Home Assistant device discovery, commands and availability.

``settings`` (the ``mqtt:`` section and the stable device id), ``topics`` (the topic layout and where
each hub message goes), ``outbox`` (the bounded queue of what waits for the broker), ``discovery`` (Home
Assistant's device discovery document), ``commands`` (commands in, answers out, through
``contracts.Controls``), ``retained`` (reading what the broker retains) and ``sink`` (``MqttSink``: the
connection, its backoff and availability, and its stats).

Imports the contracts, the hub and ``integrations.base`` only; what it needs from the rest of the
appliance (the controls, the device description, a broker locator) is passed in by ``app.py``.
"""

from appliance.integrations.mqtt.discovery import DeviceInfo
from appliance.integrations.mqtt.settings import MqttSettings, MqttTlsSettings, resolve_device_id
from appliance.integrations.mqtt.sink import BrokerLocator, MqttSink

__all__ = ["BrokerLocator", "DeviceInfo", "MqttSettings", "MqttSink", "MqttTlsSettings", "resolve_device_id"]
