"""``invispose addon``: start the appliance as a Home Assistant add-on (see ``appliance.addon``)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from appliance.addon import (
    DATA_DIR,
    OPTIONS_FILE,
    SUPERVISOR_URL,
    AddonError,
    names_a_broker,
    overrides,
    read_options,
    supervisor_mqtt,
)
from appliance.config import AppConfig, ConfigError, load_config


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    addon = subparsers.add_parser(
        "addon",
        parents=[common],
        help="run as a Home Assistant add-on (options.json, the Supervisor's MQTT broker, ingress)",
        description="Reads the add-on's options, asks the Supervisor for its MQTT broker when MQTT is wanted "
        "and appliance.yaml names none, then runs the appliance with data in /data and Home Assistant's "
        "ingress signed in. The add-on's start script runs this; it is not meant for other machines.",
    )
    addon.add_argument(
        "--options", type=Path, default=OPTIONS_FILE, help="the add-on's options (default: %(default)s)"
    )
    addon.add_argument(
        "--supervisor",
        default=SUPERVISOR_URL,
        help="the Supervisor's API; its token is $SUPERVISOR_TOKEN (default: %(default)s)",
    )
    addon.set_defaults(handler=run_addon)


def addon_config(args: argparse.Namespace) -> AppConfig:
    """appliance.yaml with the add-on's options and the Supervisor's broker on top."""
    options = read_options(args.options)
    data_dir: Path = args.data_dir or DATA_DIR
    broker = None
    if options.mqtt and not names_a_broker(load_config(args.config)):
        token = os.environ.get("SUPERVISOR_TOKEN")
        if not token:
            raise AddonError("SUPERVISOR_TOKEN is not set: the Supervisor starts add-ons with it")
        broker = asyncio.run(supervisor_mqtt(args.supervisor, token))
    return load_config(args.config, overrides=overrides(options, broker, data_dir))


def run_addon(args: argparse.Namespace) -> int:
    from appliance.app import run
    from appliance.logs import configure_logging

    try:
        config = addon_config(args)
    except ConfigError as exc:
        print(f"invispose: {args.config} is not valid, nothing was started:\n{exc}", file=sys.stderr)
        return 1
    except AddonError as exc:
        print(f"invispose: {exc}", file=sys.stderr)
        return 1
    configure_logging(config.server.log_level, config.server.log_format)
    run(config)
    return 0
