// History: room presence and people per zone over time (chart), where people spent time (the analytics
// heatmap), and the daily occupancy report.

import { api, imageUrl } from "../api.js";
import { timeChart } from "../charts.js";
import { clock, duration, h } from "../dom.js";
import { live } from "../state.js";

const RANGES = { 21600: "last 6 hours", 86400: "last 24 hours", 604800: "last 7 days" };
const BUCKETS = { 21600: 300, 86400: 900, 604800: 3600 };

function today() {
  const d = new Date();
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
}

export class HistoryPage {
  mount(section) {
    this.range = h("select", { id: "history-range", onchange: () => this.load() },
      ...Object.entries(RANGES).map(([value, label]) => h("option", { value, selected: value === "86400" }, label)));
    this.chartBox = h("div", { class: "chart" });
    this.chartNote = h("p", { class: "muted", id: "occupancy-note" });
    this.heatmap = h("img", { id: "heatmap", alt: "Heatmap of where people spent time on the floor plan", hidden: true });
    this.heatmapNote = h("p", { class: "muted" });
    this.day = h("input", { type: "date", id: "report-day", value: today(), onchange: () => this.loadReport() });
    this.report = h("div", { id: "report", class: "table-wrap" });
    this.error = h("p", { class: "error", role: "alert" });
    section.replaceChildren(
      h("h2", { id: "title-history", tabindex: -1 }, "History"),
      h("label", {}, "Show the ", this.range),
      this.error,
      h("div", { class: "card" }, h("h3", {}, "Occupancy over time"), this.chartBox, this.chartNote),
      h("div", { class: "columns" },
        h("div", { class: "card" }, h("h3", {}, "Where people spent time"), this.heatmap, this.heatmapNote),
        h("div", { class: "card" }, h("h3", {}, "Daily report"), h("label", {}, "Day ", this.day), this.report)),
    );
    this.chart = null;
  }

  show() {
    this.load();
    this.loadReport();
  }

  hide() {}

  async load() {
    const span = Number(this.range.value);
    const start = Math.floor(Date.now() / 1000 - span);
    this.error.textContent = "";
    try {
      const series = await api(`api/v1/analytics/occupancy?start_time=${start}&bucket_s=${BUCKETS[span]}`);
      const names = new Map(live.zones.map((z) => [z.id, z.name]));
      const zoneIds = Object.keys(series.zones);
      this.chart?.destroy();
      this.chart = timeChart(this.chartBox, {
        series: [{ label: "room: share of time present" }, ...zoneIds.map((id) => ({ label: `${names.get(id) ?? id}: people` }))],
        yLabel: "share / people",
      });
      this.chart.update([series.times, series.presence, ...zoneIds.map((id) => series.zones[id])]);
      const stored = series.presence.some((v) => v !== null);
      const counted = zoneIds.some((id) => series.zones[id].some((v) => v !== null));
      this.chartNote.textContent = !stored
        ? "Nothing was stored in this range yet."
        : counted
          ? "Zone lines are the mean number of people in each zone per interval; gaps are times when the motion detector ran, which cannot tell who is where."
          : "Only presence is known for this range: the motion detector produced the readings, and it cannot tell who was in which zone (the trackers can).";
    } catch (err) {
      this.error.textContent = `The history could not be read: ${err.message}`;
    }
    try {
      if (this.heatmap.src) URL.revokeObjectURL(this.heatmap.src);
      this.heatmap.src = await imageUrl(`api/v1/analytics/heatmaps?format=png&start_time=${start}&width_px=640`);
      this.heatmap.hidden = false;
      this.heatmapNote.textContent = `${RANGES[span]}: brighter cells held people longer; zones are outlined. It needs the trackers' positions.`;
    } catch (err) {
      this.heatmapNote.textContent = `The heatmap could not be drawn: ${err.message}`;
    }
  }

  async loadReport() {
    try {
      const report = await api(`api/v1/analytics/reports?period=day&date=${this.day.value || today()}`);
      const row = (z) => h("tr", {},
        h("th", { scope: "row" }, z.name),
        h("td", {}, duration(z.occupied_s)),
        h("td", {}, String(z.visits)),
        h("td", {}, String(z.persons)),
        h("td", {}, z.peak_occupancy ? `${z.peak_occupancy}${z.peak_time ? ` at ${clock(z.peak_time)}` : ""}` : "–"),
        h("td", {}, z.busiest_hour ? `${String(z.busiest_hour.hour).padStart(2, "0")}:00` : "–"),
        h("td", {}, String(z.falls)));
      this.report.replaceChildren(
        report.simulated ? h("p", { class: "simulated-note" }, "This day's data is simulated.") : "",
        h("table", {},
          h("thead", {}, h("tr", {}, ...["", "Occupied", "Visits", "People", "Peak", "Busiest hour", "Falls"].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, row(report.room), ...report.zones.map(row))));
    } catch (err) {
      this.report.replaceChildren(h("p", { class: "error" }, `The report could not be read: ${err.message}`));
    }
  }
}
