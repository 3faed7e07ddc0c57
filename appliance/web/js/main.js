// Boot: onboarding of the first admin or login, then the live stream, the header and the page router.

import { api, currentSession, endSession, errorText, onSessionEnd, startSession } from "./api.js";
import { $ } from "./dom.js";
import { EventsPage } from "./pages/events.js";
import { HistoryPage } from "./pages/history.js";
import { LivePage } from "./pages/live.js";
import { NodesPage } from "./pages/nodes.js";
import { SettingsPage } from "./pages/settings.js";
import { ZonesPage } from "./pages/zones.js";
import { applyMessage, live, loadRoom, on, reset } from "./state.js";
import { LiveStream } from "./stream.js";
import { SOURCES } from "./words.js";

const PAGES = {
  live: ["Live", LivePage],
  zones: ["Zones", ZonesPage],
  nodes: ["Nodes", NodesPage],
  events: ["Events", EventsPage],
  history: ["History", HistoryPage],
  settings: ["Settings", SettingsPage],
};
const CONNECTION_TEXT = { connecting: "connecting…", live: "live", reconnecting: "reconnecting…", closed: "not connected" };

const stream = new LiveStream();
const mounted = new Map();
let shown = null;

// -- header ------------------------------------------------------------------------------------------

function renderSource(reading) {
  if (!reading) return;
  const badge = $("source-badge");
  badge.hidden = false;
  badge.textContent = reading.simulated ? "SIMULATED" : reading.source;
  badge.title = SOURCES[reading.source] ?? reading.source;
  badge.classList.toggle("simulated", reading.simulated);
  $("simulated-banner").hidden = !reading.simulated;
}

stream.addEventListener("state", (event) => { $("connection").textContent = CONNECTION_TEXT[event.detail]; });
stream.addEventListener("message", (event) => applyMessage(event.detail));
on("status", renderSource);
on("pose", (pose) => { if (!live.status) renderSource(pose); });
on("room", (room) => { $("room").textContent = room.name; });

// -- pages -------------------------------------------------------------------------------------------

function route() {
  if (!currentSession()) return;
  const name = location.hash.replace(/^#\/?/, "") || "live";
  const entry = PAGES[name];
  if (!entry) { location.hash = "#/live"; return; }
  const [title, Page] = entry;
  if (shown && shown !== name) mounted.get(shown)?.hide();
  for (const other of Object.keys(PAGES)) $(`page-${other}`).hidden = other !== name;
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.page === name) link.setAttribute("aria-current", "page"); else link.removeAttribute("aria-current");
  }
  let page = mounted.get(name);
  if (!page) {
    page = new Page();
    page.mount($(`page-${name}`));
    mounted.set(name, page);
  }
  if (shown !== name) page.show();
  shown = name;
  document.title = `${title} · InvisPose`;
}

window.addEventListener("hashchange", route);

// -- sessions ----------------------------------------------------------------------------------------

async function showAuth(message) {
  stream.close();
  for (const page of mounted.values()) page.hide();
  mounted.clear();
  shown = null;
  for (const name of Object.keys(PAGES)) $(`page-${name}`).replaceChildren();
  $("main").hidden = true;
  $("nav").hidden = true;
  $("logout").hidden = true;
  $("user").textContent = "";
  $("connection").textContent = "not logged in";
  let setup = false;
  let codeRequired = false;
  try {
    const state = await api("api/v1/auth/setup");
    setup = state.setup_required === true;
    codeRequired = setup && state.setup_code_required === true;
  } catch (err) {
    message = `cannot reach the appliance (${err.message})`;
  }
  $("auth-form").dataset.mode = setup ? "setup" : "login";
  $("auth-title").textContent = setup ? "Create the first admin" : "Log in";
  $("auth-hint").textContent = !setup
    ? ""
    : codeRequired
      ? "This appliance was set up before and has lost its accounts. To create the first admin, enter the setup code printed in its log at start (or run 'invispose user setup-code' on it)."
      : "Nobody has an account on this appliance yet. The account you create now can do everything, so do this on a network you trust.";
  $("auth-code-label").hidden = !codeRequired;
  $("auth-code").required = codeRequired;
  $("auth-submit").textContent = setup ? "Create admin and log in" : "Log in";
  $("auth-password").autocomplete = setup ? "new-password" : "current-password";
  $("auth-password").minLength = setup ? 8 : 0;
  $("auth-error").textContent = message ?? "";
  $("auth-panel").hidden = false;
  $("auth-username").focus();
}

async function submitAuth(event) {
  event.preventDefault();
  const setup = $("auth-form").dataset.mode === "setup";
  const credentials = { username: $("auth-username").value, password: $("auth-password").value };
  if (setup && !$("auth-code-label").hidden) credentials.setup_code = $("auth-code").value;
  $("auth-submit").disabled = true;
  try {
    const response = await fetch(setup ? "api/v1/auth/setup" : "api/v1/auth/token", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(credentials),
    });
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      if (response.status === 409) await showAuth("the first admin exists already; log in");
      else $("auth-error").textContent = errorText(body, response.status);
      return;
    }
    $("auth-password").value = "";
    $("auth-code").value = "";
    startSession(body);
    await startApp();
  } catch (err) {
    $("auth-error").textContent = `cannot reach the appliance (${err.message})`;
  } finally {
    $("auth-submit").disabled = false;
  }
}

async function startApp() {
  const session = currentSession();
  reset();
  $("auth-panel").hidden = true;
  $("main").hidden = false;
  $("nav").hidden = false;
  $("logout").hidden = session.token === null; // signed in by Home Assistant: it logs out, not we
  $("user").textContent = session.username;
  stream.open(session.token);
  await loadRoom();
  route();
}

$("auth-form").addEventListener("submit", submitAuth);
$("logout").addEventListener("click", () => endSession(null));
onSessionEnd((reason) => showAuth(reason));

// Inside Home Assistant (its ingress panel) the user is signed in already; elsewhere, log in.
async function boot() {
  const state = await api("api/v1/auth/session").catch(() => null);
  if (!state?.signed_in) return showAuth();
  startSession({ access_token: null, username: state.username, scopes: state.scopes });
  return startApp();
}

boot();
