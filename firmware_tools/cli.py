"""``invispose-node``: set up the CSI nodes and routers that feed the appliance.

Exit codes: 0 done (for ``monitor`` and ``router check``: the verdict is ``fine``), 1 failed or a verdict
other than fine (the message says what to do), 2 usage. ``--json`` puts one JSON object on stdout for
scripts; progress bars and messages go to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any, TextIO

from appliance.csi.sources.tcp import DEFAULT_TCP_PORT
from firmware_tools.chips import AUTO, UnknownChipError, check_chip, chip_names
from firmware_tools.console import DEFAULT_PROMPT, run_command
from firmware_tools.device import DEFAULT_FLASH_BAUD, PARTITION_TABLE_OFFSET, Device, DeviceError
from firmware_tools.discovery import DEFAULT_TIMEOUT_S, DiscoveryError, find_sink
from firmware_tools.flash import FirmwareError, flash_firmware, load_firmware
from firmware_tools.improv import ImprovError, provision_wifi
from firmware_tools.keysets import KEY_SETS, NodeSettings, SettingsError, key_set, parse_extra
from firmware_tools.monitor import watch
from firmware_tools.nvs import NvsError
from firmware_tools.partitions import PartitionTableError
from firmware_tools.ports import list_serial_ports
from firmware_tools.provision import DEFAULT_NVS_SIZE, provision_file, provision_node
from firmware_tools.router import RouterError, check, init_script
from firmware_tools.serial_io import ESP_CSI_BAUD, PortError

EXIT_OK, EXIT_FAILED = 0, 1
# Everything a command can fail with that the user can act on; each message says how.
USER_ERRORS = (
    DeviceError,
    DiscoveryError,
    FirmwareError,
    ImprovError,
    NvsError,
    PartitionTableError,
    PortError,
    RouterError,
    SettingsError,
    UnknownChipError,
)


def _number(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (decimal or 0x hex)") from None


def _chip(text: str) -> str:
    try:
        return check_chip(text)
    except UnknownChipError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _emit(args: argparse.Namespace, out: TextIO, payload: dict[str, Any] | list[Any], text: str) -> None:
    if args.json:
        out.write(json.dumps(payload, indent=2) + "\n")
    else:
        out.write(text.rstrip("\n") + "\n")


# --- ports ------------------------------------------------------------------------------------------


def cmd_ports(args: argparse.Namespace, out: TextIO) -> int:
    ports = list_serial_ports(detect=args.detect)
    lines = []
    for p in ports:
        usb = f"  [{p.usb}; chips: {p.chips}]" if p.usb else ""
        chip = f"  -> {p.detected}" if p.detected else ""
        lines.append(f"{p.device}  {p.description}{usb}{chip}")
    if not ports:
        lines.append("no serial ports found: plug the node in with a data (not charge-only) USB cable")
    _emit(args, out, [p.as_json() for p in ports], "\n".join(lines))
    return EXIT_OK


# --- flash ------------------------------------------------------------------------------------------


def cmd_flash(args: argparse.Namespace, out: TextIO) -> int:
    firmware = load_firmware(args.firmware)
    if args.chip != AUTO and firmware.chip is not None and firmware.chip != args.chip:
        raise FirmwareError(f"--chip {args.chip} but the firmware is built for {firmware.chip}")
    with Device.open(args.port, chip=args.chip, baud=args.baud) as device:
        report = flash_firmware(device, firmware, app_offset=args.app_offset)
    text = "\n".join(
        [f"flashed {report.kind} firmware to {report.port} ({report.chip}), verified, reset:"]
        + [f"  {offset:#08x}  {size:>8} bytes  {name}" for offset, size, name in report.regions]
    )
    _emit(args, out, report.as_json(), text)
    return EXIT_OK


# --- provision --------------------------------------------------------------------------------------


def _sink(args: argparse.Namespace) -> tuple[str, int]:
    if args.sink == "auto":
        appliance = find_sink(timeout_s=args.mdns_timeout, interfaces=args.mdns_interface)
        logging.getLogger(__name__).info(
            "found %s at %s:%d", appliance.name, appliance.address, appliance.csi_port
        )
        return appliance.address, appliance.csi_port
    host, sep, port = args.sink.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise SettingsError(f"--sink {args.sink!r}: write HOST:PORT (the appliance's UDP CSI port) or auto")
    return host.strip("[]"), int(port)


def cmd_provision(args: argparse.Namespace, out: TextIO) -> int:
    keys = key_set(args.firmware_keys)
    if args.improv or keys.namespace is None:
        return _provision_improv(args, out)
    if args.sink is None or args.node_id is None:
        raise SettingsError("provisioning NVS needs --sink HOST:PORT|auto and --node-id N")
    if not args.keep_wifi and args.ssid is None:
        raise SettingsError("give --ssid and --password, or --keep-wifi to keep the node's Wi-Fi settings")
    if args.port is None and args.output is None:
        raise SettingsError("give --port (the node) or --output FILE (an image to flash yourself)")
    if args.keep_wifi and args.port is None:
        raise SettingsError("--keep-wifi reads the node's Wi-Fi settings, so it needs --port")
    host, port = _sink(args)
    settings = NodeSettings(
        ssid=None if args.keep_wifi else args.ssid,
        password=None if args.keep_wifi else args.password,
        sink_host=host,
        sink_port=port,
        node_id=args.node_id,
        channel=args.channel,
        rate_hz=args.rate,
    )
    entries = keys.entries(settings) + [parse_extra(text, keys.namespace) for text in args.set]
    if args.port is None:
        result = provision_file(keys, entries, args.output, size=args.nvs_size)
    else:
        with Device.open(args.port, chip=args.chip, baud=args.baud) as device:
            result = provision_node(
                device,
                keys,
                entries,
                keep_wifi=args.keep_wifi,
                table_offset=args.partition_table_offset,
                output=args.output,
            )
    action = "wrote" if args.output is None else "saved"
    lines = [f"{action} {len(result.written)} keys ({keys.summary}) to {result.destination}:"]
    for item in result.as_json()["written"]:  # type: ignore[attr-defined]
        lines.append(f"  {item['namespace']}/{item['key']} ({item['type']}) = {item['value']}")
    lines.append(f"kept {result.kept} other entries")
    if args.output is not None:
        lines.append(
            f"flash it at {result.nvs_offset:#x}: esptool write-flash {result.nvs_offset:#x} {args.output}"
        )
    lines += [f"warning: dropped a damaged entry: {s}" for s in result.skipped]
    _emit(args, out, result.as_json(), "\n".join(lines))
    return EXIT_OK


def _provision_improv(args: argparse.Namespace, out: TextIO) -> int:
    if args.port is None or args.ssid is None:
        raise SettingsError("Improv provisioning sends Wi-Fi settings: give --port, --ssid and --password")
    if args.output is not None:
        raise SettingsError("--output writes an NVS image; Improv has none (drop --output)")
    result = provision_wifi(args.port, args.ssid, args.password or "", timeout_s=args.improv_timeout)
    info = " / ".join(result.device_info) or "no device info"
    urls = ", ".join(result.urls) or "none"
    _emit(args, out, result.as_json(), f"Improv: {info}; state {result.state}; device URLs: {urls}")
    return EXIT_OK


# --- monitor, console ---------------------------------------------------------------------------------


def cmd_monitor(args: argparse.Namespace, out: TextIO) -> int:
    report = watch(args.port, baud=args.baud, duration_s=args.duration, progress=not args.json)
    rssi = report.rssi_dbm
    text = "\n".join(
        [
            f"{report.port} at {report.baud} baud for {report.duration_s:.1f} s: {report.lines} lines, "
            f"{report.csi_lines} CSI_DATA, {report.frames} parsed, {report.bad_lines} bad",
            f"packets/s {report.packets_per_s}, longest gap {report.max_gap_s} s, "
            f"lost {report.lost_packets}, "
            f"RSSI {rssi['min']}..{rssi['max']} dBm (mean {rssi['mean']})"
            if rssi
            else "no RSSI (no frames)",
            f"serial link {report.link_fill:.0%} full",
            f"verdict: {report.verdict}: {report.advice}",
        ]
    )
    _emit(args, out, report.as_json(), text)
    return EXIT_OK if report.verdict == "fine" else EXIT_FAILED


def cmd_console(args: argparse.Namespace, out: TextIO) -> int:
    command = " ".join(args.words).strip()
    if not command:
        raise SettingsError("give the console command after --, e.g. invispose-node console --port P -- sta")
    answer = run_command(args.port, command, baud=args.baud, timeout_s=args.timeout, prompt=args.prompt)
    lines = [*answer.lines] or ["(no answer)"]
    if answer.csi_lines:
        lines.append(f"({answer.csi_lines} CSI_DATA lines not shown)")
    _emit(args, out, answer.as_json(), "\n".join(lines))
    return EXIT_OK


# --- router -----------------------------------------------------------------------------------------


def cmd_router_script(args: argparse.Namespace, out: TextIO) -> int:
    script = init_script(args.appliance, port=args.appliance_port, recv_csi=args.recv_csi)
    if args.output is None:
        out.write(script)
    else:
        args.output.write_text(script)
        args.output.chmod(0o755)
        print(f"wrote {args.output}; copy it to the router's /etc/init.d/invispose-csi", file=sys.stderr)
    return EXIT_OK


def cmd_router_check(args: argparse.Namespace, out: TextIO) -> int:
    print(
        f"listening on {args.listen}:{args.listen_port} for up to {args.timeout:.0f} s ...", file=sys.stderr
    )
    report = asyncio.run(
        check(host=args.listen, port=args.listen_port, timeout_s=args.timeout, listen_s=args.listen_seconds)
    )
    text = (
        f"{report.connections} connection(s) from {', '.join(report.links) or 'no router'}; "
        f"{report.frames} frames, {report.bad_records} bad records\n"
        f"verdict: {report.verdict}: {report.advice}"
    )
    _emit(args, out, report.as_json(), text)
    return EXIT_OK if report.verdict == "fine" else EXIT_FAILED


# --- parser -----------------------------------------------------------------------------------------


def _json_option() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--json", action="store_true", help="one JSON object on stdout, for scripts")
    parent.add_argument("-v", "--verbose", action="store_true", help="also show esptool's and our own log")
    return parent


def _device_options(parser: argparse.ArgumentParser, *, port_required: bool) -> None:
    parser.add_argument("--port", required=port_required, help="serial port of the node (see 'ports')")
    parser.add_argument(
        "--chip", type=_chip, default=AUTO, help=f"chip, or auto to ask it (known: {', '.join(chip_names())})"
    )
    parser.add_argument(
        "--baud", type=int, default=DEFAULT_FLASH_BAUD, help="flashing speed (default %(default)s)"
    )


def build_parser() -> argparse.ArgumentParser:
    common = _json_option()
    parser = argparse.ArgumentParser(
        prog="invispose-node",
        description="Flash, provision and monitor ESP32 CSI nodes; set up Atheros CSI routers.",
        epilog="Run 'invispose-node COMMAND --help' for a command's options. Hardware: docs/hardware.md",
    )
    parser.add_argument("--version", action="version", version=f"invispose-node {version('invispose')}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ports = commands.add_parser(
        "ports", parents=[common], help="list serial ports with chip guesses",
        description="List serial ports and what their USB ids say about the chip. --detect asks each USB "
        "port's chip through esptool (this resets the boards).",
    )  # fmt: skip
    ports.add_argument("--detect", action="store_true", help="ask each USB port's chip (resets the boards)")
    ports.set_defaults(handler=cmd_ports)

    flash = commands.add_parser(
        "flash", parents=[common], help="flash firmware (app .bin, merged image or ESP-IDF build folder)",
        description="Write an app binary (to the node's app partition), a merged image (to 0) or an ESP-IDF "
        "build folder (each file to the offset in its flasher_args.json) through esptool; esptool checks "
        "every region's MD5 afterwards; then the node is reset into the new firmware.",
    )  # fmt: skip
    _device_options(flash, port_required=True)
    flash.add_argument("--firmware", type=Path, required=True, help="app .bin, merged .bin, or build folder")
    flash.add_argument(
        "--app-offset", type=_number, default=None,
        help="where an app .bin goes (default: the node's factory/ota_0 partition, else 0x10000)",
    )  # fmt: skip
    flash.set_defaults(handler=cmd_flash)

    provision = commands.add_parser(
        "provision", parents=[common], help="write Wi-Fi, sink and node id into the node's NVS",
        description="Read the node's partition table and NVS, put the settings in (keeping every other key), "
        "write NVS back and reset the node. With --output the image is saved instead (without --port: a "
        "fresh image of --nvs-size). --improv sends Wi-Fi over Improv Serial (ESPHome-based firmware).",
    )  # fmt: skip
    _device_options(provision, port_required=False)
    provision.add_argument("--ssid", help="Wi-Fi network name (2.4 GHz for most chips)")
    provision.add_argument("--password", default="", help="Wi-Fi passphrase (8-63 characters; '' for open)")
    provision.add_argument("--keep-wifi", action="store_true", help="keep the node's Wi-Fi settings")
    provision.add_argument(
        "--sink", help="appliance HOST:PORT (its UDP CSI port, 5566 by default) or auto (mDNS)"
    )
    provision.add_argument("--node-id", type=int, help="this node's number, 0-255")
    provision.add_argument("--channel", type=int, help="Wi-Fi channel to measure on (default: the AP's)")
    provision.add_argument("--rate", type=int, help="CSI packets per second to aim for")
    provision.add_argument(
        "--firmware-keys", choices=sorted(KEY_SETS), default="esp-csi",
        help="which firmware's NVS keys to write (default %(default)s; see docs/node-nvs.md)",
    )  # fmt: skip
    provision.add_argument(
        "--set", action="append", default=[], metavar="KEY=TYPE:VALUE",
        help="another key in the same namespace, e.g. tdm_slot=u8:1 (types u8..i64, string, blob as hex)",
    )  # fmt: skip
    provision.add_argument("--output", type=Path, help="save the NVS image here instead of flashing it")
    provision.add_argument(
        "--nvs-size", type=_number, default=DEFAULT_NVS_SIZE,
        help="NVS partition size for --output without --port (default %(default)#x, ESP-IDF's)",
    )  # fmt: skip
    provision.add_argument(
        "--partition-table-offset", type=_number, default=PARTITION_TABLE_OFFSET,
        help="where the node's partition table is (default %(default)#x)",
    )  # fmt: skip
    provision.add_argument("--improv", action="store_true", help="send Wi-Fi over Improv Serial instead")
    provision.add_argument("--improv-timeout", type=float, default=30.0, help="seconds to wait (default 30)")
    provision.add_argument(
        "--mdns-interface", action="append", default=None, metavar="ADDRESS",
        help="for --sink auto: ask only on this interface address (repeatable; default all)",
    )  # fmt: skip
    provision.add_argument(
        "--mdns-timeout", type=float, default=DEFAULT_TIMEOUT_S, help="for --sink auto: seconds to look"
    )
    provision.set_defaults(handler=cmd_provision)

    monitor = commands.add_parser(
        "monitor", parents=[common], help="watch the node's CSI_DATA output and judge it",
        description="Read the node's serial output for a while, parse CSI_DATA lines with the appliance's "
        "own parser and report packets/s, gaps, RSSI and a verdict with what to do. Exit 0 only if fine.",
    )  # fmt: skip
    monitor.add_argument("--port", required=True, help="serial port of the node")
    monitor.add_argument("--baud", type=int, default=ESP_CSI_BAUD, help="console speed (default %(default)s)")
    monitor.add_argument("--duration", type=float, default=10.0, help="seconds to watch (default 10)")
    monitor.set_defaults(handler=cmd_monitor)

    console = commands.add_parser(
        "console", parents=[common], help="send an esp-csi console command",
        description="Send one command to esp-csi's console and print the answer, e.g. "
        "'invispose-node console --port /dev/ttyUSB0 -- radar --csi_start'.",
    )  # fmt: skip
    console.add_argument("--port", required=True, help="serial port of the node")
    console.add_argument("--baud", type=int, default=ESP_CSI_BAUD, help="console speed (default %(default)s)")
    console.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the answer")
    console.add_argument(
        "--prompt", default=DEFAULT_PROMPT, help="the console's prompt (default %(default)s)"
    )
    console.add_argument("words", nargs=argparse.REMAINDER, metavar="COMMAND", help="the command, after --")
    console.set_defaults(handler=cmd_console)

    router = commands.add_parser("router", help="Atheros CSI Tool routers (OpenWrt)")
    router_commands = router.add_subparsers(dest="router_command", required=True, metavar="COMMAND")
    script = router_commands.add_parser(
        "script", parents=[common], help="print (or write) the router's procd init script",
        description="An OpenWrt procd init script that runs recv_csi into a TCP connection to the appliance's"
        " "
        "Atheros source and starts it again whenever it ends.",
    )  # fmt: skip
    script.add_argument("--appliance", required=True, help="the appliance's address as the router reaches it")
    script.add_argument("--appliance-port", type=int, default=DEFAULT_TCP_PORT, help="its Atheros TCP port")
    script.add_argument("--recv-csi", default="recv_csi", help="recv_csi's path on the router")
    script.add_argument("--output", type=Path, help="write the script here instead of printing it")
    script.set_defaults(handler=cmd_router_script)
    router_check = router_commands.add_parser(
        "check", parents=[common], help="listen like the appliance and say what the router sends",
        description="Listen on the Atheros TCP port in the appliance's place (stop the appliance first, or "
        "use another port), wait for a router and report what it sent. Exit 0 only if fine.",
    )  # fmt: skip
    router_check.add_argument("--listen", default="0.0.0.0", help="address to listen on (default all)")
    router_check.add_argument("--listen-port", type=int, default=DEFAULT_TCP_PORT, help="TCP port")
    router_check.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for a router")
    router_check.add_argument("--listen-seconds", type=float, default=5.0, help="seconds to collect frames")
    router_check.set_defaults(handler=cmd_router_check)
    return parser


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    args = build_parser().parse_args(argv)
    if args.command == "console" and args.words[:1] == ["--"]:
        args.words = args.words[1:]
    logging.basicConfig(
        level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
        format="%(name)s: %(message)s",
        stream=err,
    )
    try:
        code: int = args.handler(args, out)
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=err)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=err)
        return EXIT_FAILED
    return code
