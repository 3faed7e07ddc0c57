"""``invispose``: the appliance's command line (run the service, check a config, inspect CSI files,
record and replay, the pose model's tools, users and tokens, the appliance on the MQTT broker).

The commands live here, one module per group, and may import every part of the appliance; no other
package imports them. Every command takes ``--config`` and ``--data-dir`` so that scripts can run several
instances side by side.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from appliance import __version__

DEFAULT_CONFIG = Path("config/appliance.yaml")


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        type=Path,
        default=Path(os.environ.get("INVISPOSE_CONFIG", DEFAULT_CONFIG)),
        help="appliance YAML file (default: $INVISPOSE_CONFIG or %(default)s)",
    )
    common.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="directory for the database, secrets and recordings (default: data_dir in the config)",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    from appliance.cli import accounts, addon, csi, mqtt, pose, recording, schemas

    common = _common_options()
    parser = argparse.ArgumentParser(
        prog="invispose",
        description="InvisPose: WiFi CSI -> presence, motion, pose, activity and falls.",
        epilog="Run 'invispose COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"invispose {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        parents=[common],
        help="run the appliance (web UI and API on port 8099 by default)",
        description="Run the appliance until SIGINT/SIGTERM. With the default config it runs a simulated "
        "room, clearly labelled as simulated, so no hardware is needed.",
    )
    run.add_argument("--port", type=int, default=None, help="override server.port")
    run.add_argument("--host", default=None, help="override server.host (e.g. 127.0.0.1)")
    run.set_defaults(handler=_cmd_run)

    check = commands.add_parser(
        "check-config",
        parents=[common],
        help="validate a config file; exit 0 if it is valid, 1 with every problem listed if not",
    )
    check.add_argument("file", nargs="?", type=Path, help="file to check (default: --config)")
    check.set_defaults(handler=_cmd_check_config)

    csi.register(commands, common)
    recording.register(commands, common)
    pose.register(commands, common)
    accounts.register(commands, common)
    schemas.register(commands, common)
    mqtt.register(commands, common)
    addon.register(commands, common)
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if args.data_dir is not None:
        overrides["data_dir"] = str(args.data_dir)
    if getattr(args, "port", None) is not None:
        overrides["server.port"] = args.port
    if getattr(args, "host", None) is not None:
        overrides["server.host"] = args.host
    return overrides


def _cmd_run(args: argparse.Namespace) -> int:
    from appliance.app import run
    from appliance.config import ConfigError, load_config
    from appliance.logs import configure_logging
    from appliance.store.database import DatabaseOpenError

    try:
        config = load_config(args.config, overrides=_overrides(args))
    except ConfigError as exc:
        print(f"invispose: the configuration is not valid, nothing was started:\n{exc}", file=sys.stderr)
        return 1
    configure_logging(config.server.log_level, config.server.log_format)
    try:
        run(config)
    except DatabaseOpenError as exc:
        print(f"invispose: {exc}", file=sys.stderr)
        return 1
    return 0


def _cmd_check_config(args: argparse.Namespace) -> int:
    from appliance.config import ConfigError, load_config

    path = args.file or args.config
    try:
        config = load_config(path, overrides=_overrides(args))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        print(f"{path}: {len(exc.issues)} problem(s); nothing would start with this file", file=sys.stderr)
        return 1
    links = sum(n.role == "rx" for n in config.room.nodes) * sum(n.role == "tx" for n in config.room.nodes)
    kinds = ", ".join(s.type for s in config.sources)
    print(f"{path}: valid ({len(config.room.nodes)} nodes, {links} links, sources: {kinds})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        return 130
    return code
