"""InvisPose: an edge appliance that turns WiFi Channel State Information into people.

Layers, each importing only those before it: ``csi`` (frames, parsers, sources, simulator) ->
``pose`` (estimators, scene) -> ``hub`` -> ``api`` / ``integrations`` (sinks); ``app`` wires them.
"""

__version__ = "0.1.0"
