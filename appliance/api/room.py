"""``/api/v1/system/room``: the room as a floor plan draws it, and what a link is judged against.

The web UI draws walls, doors, nodes and links from this, and explains silent, slow or uncalibrated links
with the figures below, so that its diagnosis and the appliance's own rules cannot drift apart. The nodes
are the live configuration's (a node added through ``/api/v1/config/routers`` appears at once).
"""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from appliance.api.keys import CONFIG
from appliance.api.resource_keys import live_config
from appliance.api.routing import ApiRouter, Scope
from appliance.contracts.coco import KEYPOINT_NAMES, SKELETON_EDGES
from appliance.pose.camera import ASPECT

router = ApiRouter()


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FloorPoint(_Model):
    x: float
    y: float


class Position(_Model):
    x: float
    y: float
    z: float


class RoomNode(_Model):
    id: str
    kind: str = Field(description="esp32 or atheros")
    role: str = Field(description="tx sends the packets, rx measures CSI on them")
    position_m: Position


class RoomLink(_Model):
    id: str = Field(description="<tx id>-<rx id>, as links are named in readings and status")
    tx: str
    rx: str


class LinkRules(_Model):
    """What the appliance expects of a link, for explaining one that falls short."""

    timeout_s: float = Field(description="a link silent this long is down (pipeline.link_timeout_s)")
    min_packets_per_s: float = Field(
        description="below this, gaps between packets exceed prep.max_gap_s and samples are marked "
        "missing: too slow for sensing"
    )
    calibration_s: float = Field(description="seconds of empty, still room a link needs to calibrate")


class Room(_Model):
    name: str
    width_m: float = Field(description="extent along x")
    depth_m: float = Field(description="extent along y")
    height_m: float
    doors: list[FloorPoint]
    nodes: list[RoomNode]
    links: list[RoomLink] = Field(description="every tx x rx pair of the nodes")
    link_rules: LinkRules
    keypoint_names: list[str] = Field(description="the COCO-17 keypoints, in the order persons give them")
    skeleton_edges: list[tuple[int, int]] = Field(description="bones to draw, as keypoint index pairs")
    overlay_aspect: float = Field(description="width / height of the overlay view (keypoints' x and y)")


@router.get(
    "/api/v1/system/room",
    scope=Scope.SYSTEM_READ,
    summary="The room as a floor plan: size, doors, nodes, links, and the rules links are judged by",
    response=Room,
    tags=["system"],
)
async def room(request: web.Request, query: None, body: None) -> Room:
    config = request.app[CONFIG]
    live = live_config(request.app).room
    nodes = [
        RoomNode(
            id=n.id,
            kind=n.kind,
            role=n.role,
            position_m=Position(x=n.position[0], y=n.position[1], z=n.position[2]),
        )
        for n in live.nodes
    ]
    links = [
        RoomLink(id=f"{tx.id}-{rx.id}", tx=tx.id, rx=rx.id)
        for tx in live.nodes
        if tx.role == "tx"
        for rx in live.nodes
        if rx.role == "rx"
    ]
    return Room(
        name=live.name,
        width_m=live.width_m,
        depth_m=live.depth_m,
        height_m=live.height_m,
        doors=[FloorPoint(x=x, y=y) for x, y in live.doors],
        nodes=nodes,
        links=links,
        link_rules=LinkRules(
            timeout_s=config.pipeline.link_timeout_s,
            min_packets_per_s=round(1.0 / config.prep.max_gap_s, 3),
            calibration_s=config.detector.calibration_s,
        ),
        keypoint_names=list(KEYPOINT_NAMES),
        skeleton_edges=list(SKELETON_EDGES),
        overlay_aspect=ASPECT,
    )
