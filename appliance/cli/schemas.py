"""``invispose schemas``: write (or check) the shipped JSON Schemas of every message the appliance sends.

One file per message type, ``<name>.schema.json``: the hub's contracts (what REST, WebSocket, MQTT and
webhooks carry), the WebSocket protocol's own messages and the MQTT command answers. They are generated
from the same models that describe the OpenAPI document, so ``--check`` (run by the tests) fails when a
shape changed and the shipped files did not follow.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from appliance.contracts.schemas import MESSAGE_SCHEMAS
from appliance.integrations.mqtt.commands import PROTOCOL_SCHEMAS as MQTT_SCHEMAS
from appliance.integrations.websocket import PROTOCOL_SCHEMAS

DEFAULT_DIR = Path("docs/schemas")


def schema_documents() -> dict[str, str]:
    """File name -> text of every shipped schema."""
    documents: dict[str, str] = {}
    for name, model in {**MESSAGE_SCHEMAS, **PROTOCOL_SCHEMAS, **MQTT_SCHEMAS}.items():
        adapter = model if isinstance(model, TypeAdapter) else TypeAdapter(model)
        schema = adapter.json_schema()
        document: dict[str, Any] = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"{name}.schema.json",
            **schema,
        }
        documents[f"{name}.schema.json"] = json.dumps(document, indent=2, sort_keys=True) + "\n"
    return documents


def register(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    schemas = subparsers.add_parser(
        "schemas",
        help="write the JSON Schemas of every message (pose, events, status, WebSocket protocol)",
        description="Writes one <name>.schema.json per message type into --out. With --check, writes "
        "nothing and exits 1 if a file there is missing or differs.",
    )
    schemas.add_argument("--out", type=Path, default=DEFAULT_DIR, help="folder (default: %(default)s)")
    schemas.add_argument("--check", action="store_true", help="only compare; exit 1 on a difference")
    schemas.set_defaults(handler=run_schemas)


def run_schemas(args: argparse.Namespace) -> int:
    out: Path = args.out
    documents = schema_documents()
    if args.check:
        stale = [
            name
            for name, text in documents.items()
            if not (out / name).is_file() or (out / name).read_text() != text
        ]
        extra = (
            sorted(p.name for p in out.glob("*.schema.json") if p.name not in documents)
            if out.is_dir()
            else []
        )
        for name in stale:
            print(
                f"{out / name}: missing or out of date; run 'invispose schemas --out {out}'", file=sys.stderr
            )
        for name in extra:
            print(f"{out / name}: no message has this schema any more; delete it", file=sys.stderr)
        return 1 if stale or extra else 0
    out.mkdir(parents=True, exist_ok=True)
    for name, text in documents.items():
        (out / name).write_text(text)
    print(f"{len(documents)} schemas written to {out}")
    return 0
