"""sensing: where people are, from the signals that carry it.

``cues`` (per-link physical cues at the full sample rate against the link's empty room), ``geometry`` (the
room, its links, and what a body at a floor position does to each link), ``likelihood`` (how likely a
link's cues are for a body at a position moving at a velocity), ``tracker`` (a particle filter per
person on the floor plan), ``presence`` (moving and still presence, and when the room is confidently
empty), ``classifier`` (the int8 model for count, activity and posture), ``falls`` (a Doppler burst, then
stillness at floor height), ``skeleton`` (17 keypoints rendered from position, heading and posture) and
``room`` (``RoomSensing``, which ties them together).

Imports numpy, pydantic, ``appliance.contracts``, ``appliance.csi`` and ``appliance.pose.scene``.
"""
