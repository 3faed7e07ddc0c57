// Settings › MQTT: whether the appliance reaches its broker, which broker and how it was found, what waits
// in its queue and what was lost, read from the MQTT sink's entry in /api/v1/system/performance (the
// sink runner's own figures, the same ones health and /metrics use), which the Settings page polls.

import { ago, count, h } from "../dom.js";

const FOUND_BY = { configuration: "set in appliance.yaml (mqtt.host)", mdns: "found on the network over mDNS" };
const STATES = { starting: "starting", running: "running", restarting: "restarting after a failure", stopped: "stopped" };

export class MqttSection {
  constructor() {
    this.status = h("div", { id: "mqtt-status", role: "status" }, h("p", { class: "muted" }, "Reading…"));
    this.element = h("div", { class: "card", id: "mqtt-card" },
      h("h3", {}, "MQTT"),
      h("p", { class: "muted" }, "Readings and events published to your broker; Home Assistant finds the appliance there by itself (MQTT discovery)."),
      this.status);
  }

  hide() {}

  /** ``sinks``: the sink runner's entries of /api/v1/system/performance by name. */
  update(sinks) {
    const sink = sinks.get("mqtt");
    if (!sink) {
      this.status.replaceChildren(h("p", { id: "mqtt-off" },
        h("strong", {}, "MQTT is off: "), "set ", h("code", {}, "mqtt.enabled: true"),
        " in appliance.yaml (and ", h("code", {}, "mqtt.host"), ", or leave it empty to find the broker over mDNS), then restart."));
      return;
    }
    const d = sink.details;
    const fact = (name, ...value) => [h("dt", {}, name), h("dd", {}, ...value)];
    const connection = sink.connected
      ? h("span", { class: "ok", id: "mqtt-connection" }, "connected")
      : h("span", { class: "bad", id: "mqtt-connection" }, "not connected");
    this.status.replaceChildren(h("dl", { class: "facts" },
      ...fact("Broker", connection, d.broker ? [" to ", h("code", {}, d.broker)] : ""),
      ...fact("How it was found", d.broker_found_by ? FOUND_BY[d.broker_found_by] ?? d.broker_found_by : "not found yet"),
      ...(sink.last_error ? fact("Last error", h("span", { class: "bad", id: "mqtt-error" }, sink.last_error)) : []),
      ...fact("Sink", `${STATES[sink.state] ?? sink.state}; ${count(sink.restarts, "restart")}`),
      ...fact("Last connected", d.last_connected_at ? ago(Date.now() / 1000 - d.last_connected_at) : "never"),
      ...fact("Connections", `${d.connections} of ${count(d.attempts, "attempt")}`),
      ...fact("Published", `${count(sink.delivered, "message")}; discovery ${d.discovery_sent ? "sent" : "not sent yet"}`),
      ...fact("Queue", `${sink.pending} waiting (${count(d.queued_events, "event")}, ${count(d.queued_readings, "reading")}; at most ${d.queue_high_water} so far)`),
      ...fact("Lost", `${count(d.events_dropped, "event")} dropped, ${count(d.readings_superseded, "reading")} replaced by newer ones; ${sink.dropped} in all`),
      ...fact("Commands", `${d.commands} run, ${d.commands_refused} refused`),
      ...fact("Device id", h("code", {}, d.device_id))));
  }
}
