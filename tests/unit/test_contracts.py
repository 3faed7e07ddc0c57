"""The contracts: each message's serializer produces exactly what its shipped JSON Schema describes (checked
with ``jsonschema`` against the files in docs/schemas), the files are current, and the OpenAPI document
carries the same shapes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from appliance.api.openapi import build_openapi
from appliance.cli import main
from appliance.cli.schemas import schema_documents
from appliance.contracts import (
    Event,
    EventType,
    LinkStatus,
    OverlaySnapshot,
    PersonUpdate,
    SourceStatus,
    SystemStatus,
    ZoneLayout,
    ZoneOccupancy,
    ZoneShape,
)
from appliance.contracts.schemas import MESSAGE_SCHEMAS
from tests.conftest import REPO
from tests.factories import T0, frame_at, person_pose

SCHEMAS = REPO / "docs" / "schemas"


def shipped(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    return schema


STATUS = SystemStatus(
    timestamp=T0,
    version="1.2.3",
    uptime_s=12.34,
    source="esp32",
    estimator="motion",
    frames_published=5,
    sources=(SourceStatus("udp", "esp32", True, 100, T0 - 0.5, None),),
    links=(LinkStatus("ap-rx1", "udp", True, 100, 99.5, -52.5, T0 - 0.01, 3, True),),
)
EXAMPLES: list[tuple[str, object]] = [
    ("pose-frame", frame_at(T0, [(1, 2.0, 3.0, "sofa", "sitting")], 9)),
    ("pose-frame", frame_at(T0)),
    ("person-update", PersonUpdate(frame_at(T0, [(4, 1.0, 1.0, None, None)]), person_pose(4, 1.0, 1.0))),
    ("zone-occupancy", ZoneOccupancy(T0, "sofa", "Sofa", 1, (4,), "atheros", "model")),
    ("zone-occupancy", ZoneOccupancy(T0, "sofa", "Sofa", None, (), "simulated", "motion")),
    ("event", Event(EventType.PERSON_FALL_DETECTED, {"person_id": 2}, time=T0)),
    ("system-status", STATUS),
    (
        "zone-layout",
        ZoneLayout(T0, (ZoneShape("sofa", "Sofa", ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0)), False),)),
    ),
    ("overlay-snapshot", OverlaySnapshot(T0, 640, 360, 9, "simulated", "/9j/4AAQ")),
    ("overlay-snapshot", OverlaySnapshot(T0, 640, 360, None, None, "/9j/4AAQ")),
]


@pytest.mark.parametrize(("name", "item"), EXAMPLES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(EXAMPLES)])
def test_each_serializer_matches_its_shipped_schema(name: str, item: Any) -> None:
    data = json.loads(json.dumps(item.to_dict()))
    jsonschema.Draft202012Validator(shipped(name)).validate(data)
    # extra="forbid" both ways: every key the serializer writes is declared, and none is missing.
    assert set(data) == set(shipped(name)["properties"])


def test_a_serializer_change_is_caught_by_the_schema() -> None:
    data = json.loads(json.dumps(STATUS.to_dict()))
    data["links"][0]["rssi_dbm"] = "strong"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(shipped("system-status")).validate(data)


def test_the_shipped_schema_files_are_current(tmp_path: Path) -> None:
    assert main(["schemas", "--check", "--out", str(SCHEMAS)]) == 0
    (tmp_path / "event.schema.json").write_text("{}")
    (tmp_path / "gone.schema.json").write_text("{}")
    assert main(["schemas", "--check", "--out", str(tmp_path)]) == 1
    assert main(["schemas", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.schema.json")) == sorted(
        [*schema_documents(), "gone.schema.json"]
    )


def test_the_openapi_document_carries_every_message_shape() -> None:
    components = build_openapi([])["components"]["schemas"]
    for model in MESSAGE_SCHEMAS.values():
        assert model.__name__ in components
    assert set(components["PoseFrameModel"]["properties"]) == set(shipped("pose-frame")["properties"])
