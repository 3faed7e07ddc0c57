"""pose: estimators (motion detector now; a TFLite model later), tracker, zones, activity, falls.

Imports csi, coco and numpy; never hub, api or integrations.
"""
