"""The physics-based CSI simulator: a room, people in it, and the frames its receivers would report.

``room`` (geometry, nodes, links), ``body`` (3D COCO-17 skeletons and their limbs as radar targets),
``scenario`` (motion scripts), ``channel`` (multipath synthesis), ``impairments`` (what radios add) and
``simulator`` (``RoomSimulator``, which ties them together and yields ground truth beside the frames).
Imports only numpy, scipy, ``appliance.csi.frame`` and ``appliance.contracts.coco``.
"""

from appliance.csi.simulator.body import Body
from appliance.csi.simulator.impairments import Impairments
from appliance.csi.simulator.room import NodeSpec, RoomSpec, default_room
from appliance.csi.simulator.scenario import PersonScript, Scenario
from appliance.csi.simulator.simulator import PersonTruth, RoomSimulator, SceneTruth, SimulatedChunk

__all__ = [
    "Body",
    "Impairments",
    "NodeSpec",
    "PersonScript",
    "PersonTruth",
    "RoomSimulator",
    "RoomSpec",
    "Scenario",
    "SceneTruth",
    "SimulatedChunk",
    "default_room",
]
