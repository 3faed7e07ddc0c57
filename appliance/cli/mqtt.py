"""``invispose mqtt remove``: take this appliance off the MQTT broker and out of Home Assistant.

It publishes an empty retained discovery document (Home Assistant then deletes the device and all its
entities), and clears every retained message under ``<topic_prefix>/<device_id>/`` (the room, zones,
status, controls, availability), which it finds by asking the broker. It refuses while the appliance is
still connected (availability ``online``), because the appliance would publish it all again; stop it, or
set ``mqtt.enabled: false`` and restart it, first (or pass ``--force``).

Exit codes: 0 done (or nothing to remove), 1 configuration, broker or refusal error, 2 usage (argparse).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import TextIO

import aiomqtt

from appliance.integrations.mqtt.retained import read_retained
from appliance.integrations.mqtt.settings import MqttSettings, saved_device_id
from appliance.integrations.mqtt.sink import describe_failure, tls_context
from appliance.integrations.mqtt.topics import AVAILABLE, Topics

EXIT_OK, EXIT_ERROR = 0, 1


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    mqtt = subparsers.add_parser("mqtt", help="the appliance on the MQTT broker (Home Assistant)")
    actions = mqtt.add_subparsers(dest="mqtt_command", required=True, metavar="ACTION")
    remove = actions.add_parser(
        "remove",
        parents=[common],
        help="delete this appliance's device from Home Assistant and its retained topics from the broker",
        description="Publishes an empty retained discovery document (Home Assistant deletes the device) "
        "and clears every retained topic under <topic_prefix>/<device_id>/. Uses the mqtt: section of "
        "the configuration (broker, account, TLS) and the device id kept in the data directory.",
    )
    remove.add_argument("--host", default=None, help="broker address (default: mqtt.host)")
    remove.add_argument("--port", type=int, default=None, help="broker port (default: mqtt.port)")
    remove.add_argument(
        "--force", action="store_true", help="remove even while the appliance says it is online"
    )
    remove.set_defaults(handler=run_remove)


def run_remove(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    from appliance.config import ConfigError, load_config

    overrides = {"data_dir": str(args.data_dir)} if args.data_dir is not None else {}
    try:
        config = load_config(args.config, overrides=overrides)
    except ConfigError as exc:
        print(f"invispose: the configuration is not valid:\n{exc}", file=err)
        return EXIT_ERROR
    settings = config.mqtt
    try:
        device_id = saved_device_id(settings, config.data_dir.expanduser())
    except ValueError as exc:
        print(f"invispose: {exc}", file=err)
        return EXIT_ERROR
    if device_id is None:
        print(
            "invispose: nothing to remove: this appliance has no MQTT device id yet (mqtt.device_id is not "
            "set and it never published)",
            file=out,
        )
        return EXIT_OK
    host = args.host or settings.host
    if host is None:
        print("invispose: name the broker: set mqtt.host or pass --host", file=err)
        return EXIT_ERROR
    port = args.port or settings.broker_port
    topics = Topics(settings.topic_prefix, settings.discovery_prefix, device_id)
    return asyncio.run(_remove(settings, topics, host, port, args.force, out, err))


async def _remove(
    settings: MqttSettings, topics: Topics, host: str, port: int, force: bool, out: TextIO, err: TextIO
) -> int:
    password = settings.password.get_secret_value() if settings.password is not None else None
    tls = await asyncio.to_thread(tls_context, settings.tls) if settings.tls is not None else None
    client = aiomqtt.Client(
        host,
        port,
        username=settings.username,
        password=password,
        # Not the appliance's own client id: the broker would disconnect a running appliance for it.
        identifier=f"{settings.client_id or 'invispose-' + topics.device_id}-remove",
        timeout=settings.timeout_s,
        tls_context=tls,
    )
    try:
        async with client:
            retained = await read_retained(
                client, [topics.discovery, topics.everything], topics.sync, settings.timeout_s
            )
            if retained.get(topics.availability, b"").decode(errors="replace") == AVAILABLE and not force:
                print(
                    f"invispose: {topics.device_id} is still connected (availability online). Stop the "
                    "appliance, or set mqtt.enabled: false and restart it, then run this again (or pass "
                    "--force; a running appliance publishes everything again when it reconnects).",
                    file=err,
                )
                return EXIT_ERROR
            # The discovery document first: Home Assistant removes the device before its states vanish.
            cleared = [topics.discovery, *sorted(t for t in retained if t != topics.discovery)]
            for topic in cleared:
                await client.publish(topic, b"", qos=1, retain=True)
    except (aiomqtt.MqttError, TimeoutError) as exc:
        print(f"invispose: {describe_failure(exc, settings.timeout_s)} ({host}:{port})", file=err)
        return EXIT_ERROR
    print(f"removed {topics.device_id} from Home Assistant ({topics.discovery})", file=out)
    states = [t for t in cleared if t != topics.discovery]
    print(f"cleared {len(states)} retained topic(s) under {topics.base}/", file=out)
    for topic in states:
        print(f"  {topic}", file=out)
    return EXIT_OK
