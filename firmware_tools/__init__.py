"""``invispose-node``: flash, provision and monitor ESP32 CSI nodes; set up Atheros CSI routers.

``chips`` (what each Espressif chip is and where its images go), ``ports`` (serial ports with chip guesses),
``device`` (the one place that talks to esptool), ``firmware`` and ``flash`` (what to write where),
``partitions`` and ``nvs`` (the partition table and NVS pages read from and written to a node),
``keysets`` (which NVS keys each firmware reads), ``provision``, ``discovery`` (the appliance over mDNS),
``improv`` (Improv Wi-Fi over serial), ``serial_io`` (line-oriented serial ports), ``monitor``, ``console``,
``router`` (OpenWrt init script and the receiving check) and ``cli``.

Imports ``appliance.csi`` (parsers, frame, sources) and libraries; nothing in ``appliance`` imports this.
"""
