// Nodes: every link's packets/s, RSSI, lost packets, last seen and calibration, with a live chart each,
// a diagnosis in plain words (silent, too slow, never calibrated) with what to do, the sources that feed
// them, and the "recalibrate empty room" action with its countdown.

import { api, may } from "../api.js";
import { timeChart } from "../charts.js";
import { ago, clock, h } from "../dom.js";
import { live, on } from "../state.js";

const POLL_MS = 1000;
const CHART_S = 60;
const HIGH_LOSS = 0.1;
const SEE_ALSO = "Full checklist: the README, section Troubleshooting (\"No data from my node\").";

/** What is wrong with a link and what to do, or null when it works. */
export function diagnose(link, reading, source, rules, controls) {
  if (!link.frames) {
    return {
      level: "bad",
      title: "Never heard from",
      text: `No packet from this link has arrived since the appliance started. Check that ${link.rx ?? "the receiver"} is `
        + `powered and on the WiFi, that ${link.tx ?? "the transmitter"} is sending, and that the receiver's CSI reaches this box: `
        + "a serial node needs its port and the dialout group; a UDP node must send to this box's address and port; "
        + "an Atheros router must reach this box's TCP port (nc -z BOX_IP 5567 on the router).",
    };
  }
  if (!link.up) {
    const stopped = source && !source.running
      ? ` Its source "${source.name}" has stopped${source.error ? `: ${source.error}` : " (a recording that does not loop ends)"}.`
      : "";
    return {
      level: "bad",
      title: "Silent",
      text: `No packets for ${Math.round(link.last_seen_s_ago)} s (the last one came at ${clock(link.last_seen)}).${stopped} `
        + "Check the node's power and cable, and that it is still on the WiFi; a node that keeps rebooting often has a weak power supply.",
    };
  }
  if (link.packets_per_s < rules.min_packets_per_s) {
    return {
      level: "warn",
      title: "Too slow",
      text: `Only ${link.packets_per_s.toFixed(0)} packets/s arrive; below ${rules.min_packets_per_s} the gaps between packets are `
        + "too long to sense motion. Raise the node's packet rate (invispose-node provision --rate), or move it closer to the "
        + "transmitter; 50-100 packets/s is a good rate.",
    };
  }
  if (reading && !reading.calibrated) {
    return controls?.calibrating
      ? { level: "warn", title: "Calibrating", text: "Learning this link's empty room: keep the room empty and still until it finishes." }
      : { level: "warn", title: "Not calibrated yet", text: `The detector learns each link's empty room from its first ${rules.calibration_s} s of packets, so keep the room empty and still meanwhile. If this stays, empty the room and press Recalibrate empty room.` };
  }
  if (link.loss_ratio > HIGH_LOSS) {
    return {
      level: "warn",
      title: "Losing packets",
      text: `${Math.round(link.loss_ratio * 100)} % of packets are lost: the node may be too far from the transmitter, or the channel busy. `
        + "Move it closer or choose a quieter WiFi channel.",
    };
  }
  return null;
}

export class NodesPage {
  mount(section) {
    this.sources = h("ul", { class: "plain", id: "sources" });
    this.cards = h("div", { class: "link-cards", id: "link-cards" });
    this.recalibrate = h("button", { type: "button", id: "recalibrate", disabled: !may("config:write"), onclick: () => this.startCalibration() },
      "Recalibrate empty room");
    this.countdown = h("p", { id: "calibration-countdown", class: "countdown", role: "status" });
    this.calibrationNote = h("p", { class: "muted" });
    this.error = h("p", { class: "error", role: "alert" });
    section.replaceChildren(
      h("h2", { id: "title-nodes", tabindex: -1 }, "Nodes"),
      h("div", { class: "card" },
        h("h3", {}, "Calibration"),
        this.calibrationNote,
        this.recalibrate,
        this.countdown),
      h("div", { class: "card" }, h("h3", {}, "Sources"), this.sources),
      this.error,
      this.cards,
    );
    this.linkCards = new Map();
    this.history = new Map(); // link -> {t: [], pps: []}
    this.routers = null;
    this.subscriptions = [];
  }

  show() {
    this.subscriptions = [
      on("status", () => { this.drawSources(); this.drawLinks(); }),
      on("controls", () => this.drawCalibration()),
      on("room", () => this.drawLinks()),
    ];
    this.poll();
    this.drawSources();
    this.drawCalibration();
  }

  hide() {
    for (const off of this.subscriptions) off();
    this.subscriptions = [];
    clearTimeout(this.pollTimer);
    clearInterval(this.tick);
  }

  async poll() {
    clearTimeout(this.pollTimer);
    try {
      this.routers = await api("api/v1/system/routers");
      this.error.textContent = "";
      const now = Date.now() / 1000;
      for (const link of this.routers.routers) {
        const series = this.history.get(link.link) ?? { t: [], pps: [] };
        series.t.push(now);
        series.pps.push(link.up ? link.packets_per_s : 0);
        while (series.t.length && series.t[0] < now - CHART_S) { series.t.shift(); series.pps.shift(); }
        this.history.set(link.link, series);
      }
      this.drawLinks();
    } catch (err) {
      this.error.textContent = `Cannot read the links: ${err.message}`;
    }
    this.pollTimer = setTimeout(() => this.poll(), POLL_MS);
  }

  drawSources() {
    const sources = live.status?.sources ?? [];
    this.sources.replaceChildren(...sources.map((source) => h("li", { dataset: { source: source.name } },
      h("span", { class: source.running ? "ok" : "bad" }, source.running ? "running" : "stopped"), " ",
      h("strong", {}, source.name), ` (${source.kind}): ${source.frames} frames`,
      !source.running ? ` · ${source.error ?? "it ended (a recording that does not loop stops at its end)"}` : "")));
    if (!sources.length) this.sources.replaceChildren(h("li", { class: "muted" }, "Waiting for the appliance's status…"));
  }

  drawLinks() {
    if (!this.routers || !live.room) return;
    const nodes = new Map(live.room.links.map((l) => [l.id, l]));
    const seen = new Map(this.routers.routers.map((r) => [r.link, r]));
    const ids = [...new Set([...live.room.links.map((l) => l.id), ...seen.keys()])].sort();
    const sources = new Map((live.status?.sources ?? []).map((s) => [s.name, s]));
    const readings = new Map((live.pose?.links ?? []).map((r) => [r.link, r]));
    const statusLinks = new Map((live.status?.links ?? []).map((l) => [l.link, l]));
    for (const id of ids) {
      const link = { frames: 0, ...nodes.get(id), ...seen.get(id) };
      const reading = readings.get(id) ?? (statusLinks.has(id) ? { calibrated: statusLinks.get(id).calibrated } : null);
      this.drawLink(id, link, reading, sources.get(link.source));
    }
    for (const [id, card] of this.linkCards) {
      if (!ids.includes(id)) { card.chart.destroy(); card.element.remove(); this.linkCards.delete(id); }
    }
  }

  drawLink(id, link, reading, source) {
    let card = this.linkCards.get(id);
    if (!card) {
      const chartBox = h("div", { class: "chart small" });
      const element = h("article", { class: "card link-card", dataset: { link: id }, "aria-labelledby": `link-${id}` },
        h("h3", { id: `link-${id}` }, `Link ${id}`),
        h("p", { class: "badge-line" }),
        h("dl", { class: "facts" }),
        chartBox,
        h("p", { class: "diagnosis", role: "status" }));
      this.cards.append(element);
      card = { element, chart: timeChart(chartBox, { series: [{ label: "packets/s" }], height: 70, compact: true }) };
      this.linkCards.set(id, card);
    }
    const problem = diagnose(link, reading, source, live.room.link_rules, live.controls);
    const [badgeLine, facts, , diagnosis] = [...card.element.children].slice(1);
    badgeLine.replaceChildren(
      h("span", { class: `state ${problem ? problem.level : "ok"}` }, problem ? problem.title : "Working"),
      link.source ? ` via ${link.source}` : "");
    const fact = (name, value) => [h("dt", {}, name), h("dd", {}, value)];
    facts.replaceChildren(
      ...fact("Packets/s", link.frames ? link.packets_per_s.toFixed(0) : "–"),
      ...fact("RSSI", link.rssi_dbm === null || link.rssi_dbm === undefined ? "–" : `${link.rssi_dbm} dBm`),
      ...fact("Lost", link.frames ? `${link.packets_lost} (${(link.loss_ratio * 100).toFixed(1)} %)` : "–"),
      ...fact("Last seen", link.frames ? ago(link.last_seen_s_ago) : "never"),
      ...fact("Calibrated", reading ? (reading.calibrated ? "yes" : "no") : "–"),
    );
    diagnosis.textContent = problem ? `${problem.text} ${problem.level === "bad" ? SEE_ALSO : ""}` : "This link works: packets arrive at a good rate and its empty room is learnt.";
    diagnosis.className = `diagnosis ${problem ? problem.level : "ok"}`;
    const series = this.history.get(id);
    if (series) card.chart.update([series.t, series.pps]);
  }

  // -- calibration -----------------------------------------------------------------------------------

  async startCalibration() {
    this.error.textContent = "";
    try {
      this.calibrationStarted = Date.now();
      this.sawCalibrating = false;
      live.controls = await api("api/v1/system/calibrate", { method: "POST" });
      this.drawCalibration();
      clearInterval(this.tick);
      this.tick = setInterval(() => this.drawCalibration(), 250);
    } catch (err) {
      this.error.textContent = `Recalibration did not start: ${err.message}`;
    }
  }

  drawCalibration() {
    const seconds = live.room?.link_rules.calibration_s ?? 10;
    this.calibrationNote.textContent = `Leave the room and keep it still: each link learns its empty room for ${seconds} s. `
      + "Do this when the room reads present while it is empty.";
    const controls = live.controls;
    if (!controls) return;
    const progress = `${controls.calibrated_links} of ${controls.links} links calibrated`;
    const elapsed = this.calibrationStarted ? (Date.now() - this.calibrationStarted) / 1000 : null;
    if (controls.calibrating) this.sawCalibrating = true;
    // Finished once the appliance has said it calibrates and then that it no longer does.
    if (!controls.calibrating && (this.sawCalibrating || elapsed === null)) {
      this.recalibrate.disabled = !may("config:write");
      clearInterval(this.tick);
      if (this.calibrationStarted) this.countdown.textContent = `Done at ${clock(controls.timestamp)}: ${progress}.`;
      this.calibrationStarted = null;
      this.sawCalibrating = false;
      return;
    }
    this.recalibrate.disabled = true;
    this.countdown.textContent = elapsed === null
      ? `Calibrating: ${progress}`
      : elapsed < seconds
        ? `Keep the room empty: ${Math.ceil(seconds - elapsed)} s left · ${progress}`
        : `Finishing: ${progress} (a silent link calibrates once it sends again)`;
  }
}
