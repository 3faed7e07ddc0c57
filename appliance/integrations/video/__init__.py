"""The live skeleton-overlay video: a sink that draws each reading and sends it where it is wanted.

- ``settings``: the ``video:`` section, and push URLs whose stream keys never reach a log or an answer;
- ``render``: the overlay renderer (OpenCV), run on the sink's render thread;
- ``ffmpeg``: one ffmpeg fed raw frames on a pipe (frames dropped, never queued, when it falls behind)
  and the command lines of the encoded outputs (RTMP push; HLS and DASH from one encode);
- ``outputs``: an encoded output kept alive: started when wanted, restarted with backoff, stopped;
- ``segments``: the HLS/DASH files in the data directory and their HTTP viewers;
- ``webrtc``: WHEP-style WebRTC with aiortc, kept on the configured addresses;
- ``sink``: ``VideoSink``, which renders only while an output needs frames, and publishes an
  ``OverlaySnapshot`` every ``snapshot_interval_s`` while a sink takes them (the MQTT camera).

Like every sink it knows the hub, the contracts and ``integrations.base``; the room's floor plan comes
from the composition root. The HTTP routes are ``appliance.api.video``. Nothing is imported here, so
reading the settings (``config.py``) does not load OpenCV or aiortc.
"""
