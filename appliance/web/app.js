"use strict";
// Polls the status endpoint and renders the room; every value shown comes from the API as-is.
const POLL_MS = 500;
const HISTORY_S = 120;
const history = [];

const $ = (id) => document.getElementById(id);

function yesNo(v) { return v ? "yes" : "no"; }

function renderLinks(status) {
  const readings = new Map((status.current?.links ?? []).map((r) => [r.link, r]));
  const rows = status.links.map((l) => {
    const r = readings.get(l.link);
    const cells = [
      l.link,
      l.packets_per_s.toFixed(0),
      l.rssi_dbm === null ? "–" : `${l.rssi_dbm} dBm`,
      r ? r.score.toFixed(2) : "–",
      r ? yesNo(r.motion) : "–",
      r ? yesNo(r.calibrated) : "–",
      l.up ? "up" : "down",
    ];
    const tr = document.createElement("tr");
    cells.forEach((text, i) => {
      const td = document.createElement("td");
      td.textContent = text;
      if (i === 4 || i === 5) td.className = text === "yes" ? "yes" : "no";
      if (i === 6) td.className = l.up ? "yes" : "down";
      tr.appendChild(td);
    });
    return tr;
  });
  $("links").replaceChildren(...rows);
}

function drawHistory() {
  const canvas = $("history");
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  const now = Date.now() / 1000;
  const maxScore = Math.max(2, ...history.map((p) => p.score));
  const y = (s) => h - 8 - (s / maxScore) * (h - 16);
  ctx.strokeStyle = "#d29922"; ctx.setLineDash([4, 4]);
  ctx.beginPath(); ctx.moveTo(0, y(1)); ctx.lineTo(w, y(1)); ctx.stroke();
  ctx.setLineDash([]); ctx.strokeStyle = "#58a6ff"; ctx.lineWidth = 2; ctx.beginPath();
  history.forEach((p, i) => {
    const x = w - ((now - p.t) / HISTORY_S) * w;
    if (i === 0) ctx.moveTo(x, y(p.score)); else ctx.lineTo(x, y(p.score));
  });
  ctx.stroke();
}

function render(status) {
  $("room").textContent = status.room;
  const badge = $("source-badge");
  badge.hidden = false;
  badge.textContent = status.simulated ? "SIMULATED" : status.source;
  badge.className = status.simulated ? "badge simulated" : "badge";
  $("simulated-banner").hidden = !status.simulated;
  const cur = status.current;
  if (cur) {
    $("presence").textContent = cur.presence ? "present" : "empty";
    $("presence-tile").classList.toggle("on", cur.presence);
    $("motion").textContent = cur.motion ? "moving" : "still";
    $("motion-tile").classList.toggle("on", cur.motion);
    $("score").textContent = cur.motion_score.toFixed(2);
    $("estimator").textContent = `${cur.estimator} (${cur.source})`;
    history.push({ t: cur.timestamp, score: cur.motion_score });
    while (history.length && history[0].t < cur.timestamp - HISTORY_S) history.shift();
  }
  const truth = status.simulation?.ground_truth;
  $("truth-section").hidden = !status.simulation;
  if (truth) {
    const people = truth.persons.map((p) => `person ${p.id}: ${p.activity}`).join(", ");
    $("truth").textContent = truth.person_count ? `${truth.person_count} in the room (${people})` : "nobody in the room";
  }
  renderLinks(status);
  drawHistory();
  const lat = status.latency_ms;
  $("system").textContent = `uptime ${status.uptime_s.toFixed(0)} s · latency p50 ${lat.p50 ?? "–"} ms, p99 ${lat.p99 ?? "–"} ms · memory ${status.memory_mb} MB · v${status.version}`;
}

async function poll() {
  try {
    const response = await fetch("/api/v1/system/status", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    render(await response.json());
    $("connection").textContent = "live";
  } catch (err) {
    $("connection").textContent = `not connected (${err.message}); retrying`;
  }
  setTimeout(poll, POLL_MS);
}

poll();
