"use strict";
// Logs in (or onboards the first admin), then polls the status endpoint and renders the room; every value
// shown comes from the API as-is.
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

// The login token lives in sessionStorage: it dies with the tab, and no other site can send it for us.
const TOKEN_KEY = "invispose.token";
let pollTimer = null;

class AuthRequired extends Error {}

async function api(path, options = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const headers = { ...(options.headers ?? {}) };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(path, { cache: "no-store", ...options, headers });
  if (response.status === 401 && token) {
    sessionStorage.removeItem(TOKEN_KEY);
    throw new AuthRequired("your session ended; log in again");
  }
  return response;
}

function errorText(body, status) {
  const error = body?.error;
  if (!error) return `HTTP ${status}`;
  const detail = Array.isArray(error.details) && error.details.length ? `: ${error.details[0].field} ${error.details[0].message}` : "";
  return `${error.message}${detail}`;
}

async function showAuth(message) {
  clearTimeout(pollTimer);
  $("dashboard").hidden = true;
  $("logout").hidden = true;
  $("connection").textContent = "not logged in";
  let setup = false;
  let codeRequired = false;
  try {
    const response = await fetch("/api/v1/auth/setup", { cache: "no-store" });
    const state = response.ok ? await response.json() : {};
    setup = state.setup_required === true;
    codeRequired = setup && state.setup_code_required === true;
  } catch (err) {
    message = `cannot reach the appliance (${err.message})`;
  }
  const form = $("auth-form");
  form.dataset.mode = setup ? "setup" : "login";
  $("auth-title").textContent = setup ? "Create the first admin" : "Log in";
  $("auth-hint").textContent = !setup
    ? ""
    : codeRequired
      ? "This appliance was set up before and has lost its accounts. To create the first admin, enter the setup code printed in its log at start (or run 'invispose user setup-code' on it)."
      : "Nobody has an account on this appliance yet. The account you create now can do everything.";
  $("auth-code-label").hidden = !codeRequired;
  $("auth-code").required = codeRequired;
  $("auth-submit").textContent = setup ? "Create admin and log in" : "Log in";
  $("auth-password").autocomplete = setup ? "new-password" : "current-password";
  $("auth-password").minLength = setup ? 8 : 0;
  $("auth-error").textContent = message ?? "";
  $("auth-panel").hidden = false;
}

async function submitAuth(event) {
  event.preventDefault();
  const form = $("auth-form");
  const path = form.dataset.mode === "setup" ? "/api/v1/auth/setup" : "/api/v1/auth/token";
  const credentials = { username: $("auth-username").value, password: $("auth-password").value };
  if (form.dataset.mode === "setup" && !$("auth-code-label").hidden) credentials.setup_code = $("auth-code").value;
  try {
    const response = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(credentials),
    });
    const body = await response.json();
    if (!response.ok) {
      $("auth-error").textContent = errorText(body, response.status);
      if (response.status === 409) await showAuth("the first admin exists already; log in");
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, body.access_token);
    $("auth-password").value = "";
    startDashboard();
  } catch (err) {
    $("auth-error").textContent = `cannot reach the appliance (${err.message})`;
  }
}

function startDashboard() {
  $("auth-panel").hidden = true;
  $("dashboard").hidden = false;
  $("logout").hidden = false;
  poll();
}

async function poll() {
  try {
    const response = await api("/api/v1/system/status");
    const body = await response.json();
    if (!response.ok) throw new Error(errorText(body, response.status));
    render(body);
    $("connection").textContent = "live";
  } catch (err) {
    if (err instanceof AuthRequired) {
      showAuth(err.message);
      return;
    }
    $("connection").textContent = `not connected (${err.message}); retrying`;
  }
  pollTimer = setTimeout(poll, POLL_MS);
}

$("auth-form").addEventListener("submit", submitAuth);
$("logout").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  showAuth();
});

if (sessionStorage.getItem(TOKEN_KEY)) startDashboard(); else showAuth();
