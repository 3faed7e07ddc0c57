// Settings: system status and version, the controls, API tokens (created with scopes and expiry, shown
// once, revoked), users, and the integrations: webhooks, MQTT and the overlay video.

import { api, may } from "../api.js";
import { clock, duration, h } from "../dom.js";
import { MqttSection } from "../integrations/mqtt.js";
import { VideoSection } from "../integrations/video.js";
import { WebhooksSection } from "../integrations/webhooks.js";
import { live, on } from "../state.js";
import { SCOPES, SOURCES, estimatorName } from "../words.js";

const INTEGRATIONS_POLL_MS = 3000;
const EXPIRIES = { "1d": "1 day", "30d": "30 days", "1y": "1 year", never: "never" };
const date = (iso) => (iso ? new Date(iso).toLocaleString() : "–");

export class SettingsPage {
  mount(section) {
    this.system = h("dl", { class: "facts", id: "system-facts" });
    this.health = h("ul", { class: "plain", id: "health" });
    this.controlsForm = this.buildControls();
    this.tokens = h("div", { class: "table-wrap", id: "tokens" });
    this.newToken = h("div", { id: "new-token-box", hidden: true });
    this.users = h("div", { class: "table-wrap", id: "users" });
    this.integrations = [new WebhooksSection(), new MqttSection(), new VideoSection()];
    this.message = h("p", { class: "error", role: "alert", id: "settings-error" });
    const admin = may("admin:all");
    section.replaceChildren(
      h("h2", { id: "title-settings", tabindex: -1 }, "Settings"),
      this.message,
      h("div", { class: "columns" },
        h("div", { class: "card" }, h("h3", {}, "System"), this.system, h("h4", {}, "Health"), this.health),
        h("div", { class: "card" }, h("h3", {}, "Detection"), this.controlsForm)),
      admin ? h("div", { class: "card", id: "tokens-card" },
        h("h3", {}, "API tokens"),
        h("p", { class: "muted" }, "For Home Assistant and scripts. A token is shown once, when it is made; only a hash of it is kept."),
        this.buildTokenForm(), this.newToken, this.tokens) : "",
      admin ? h("div", { class: "card", id: "users-card" }, h("h3", {}, "Users"), this.buildUserForm(), this.users) : "",
      ...this.integrations.map((integration) => integration.element),
    );
    this.subscriptions = [];
  }

  show() {
    this.subscriptions = [on("controls", () => this.fillControls())];
    this.fillControls();
    this.loadSystem();
    if (may("admin:all")) {
      this.loadTokens();
      this.loadUsers();
    }
    this.shown = true;
    this.pollIntegrations();
  }

  hide() {
    this.shown = false;
    clearTimeout(this.integrationsTimer);
    for (const integration of this.integrations) integration.hide();
    for (const off of this.subscriptions) off();
    this.subscriptions = [];
  }

  fail(what, err) {
    this.message.textContent = `${what}: ${err.message}`;
  }

  // -- system ----------------------------------------------------------------------------------------

  async loadSystem() {
    try {
      const [status, health] = await Promise.all([api("api/v1/system/status"), api("api/v1/system/health").catch((e) => e.body)]);
      const fact = (name, value) => [h("dt", {}, name), h("dd", {}, value)];
      const model = status.model.loaded
        ? `${status.model.version} (trained on ${status.model.trained_on ?? "?"})`
        : `not in use: ${status.model.why_not ?? "?"}`;
      this.system.replaceChildren(
        ...fact("Version", status.version),
        ...fact("Room", status.room),
        ...fact("Source", `${SOURCES[status.source] ?? status.source}${status.simulated ? " (SIMULATED)" : ""}`),
        ...fact("Readings by", estimatorName(status.estimator)),
        ...fact("Count and activity model", model),
        ...fact("Running for", duration(status.uptime_s)),
        ...fact("Latency", status.latency_ms.p50 === null ? "–" : `${status.latency_ms.p50} ms typical, ${status.latency_ms.p99} ms worst 1 %`),
        ...fact("Memory", `${status.memory_mb} MB`),
      );
      this.health.replaceChildren(...Object.entries(health?.components ?? {}).map(([name, c]) =>
        h("li", {}, h("span", { class: c.status === "ok" ? "ok" : c.status === "down" ? "bad" : "warn" }, c.status), ` ${name}: ${c.detail}`)));
    } catch (err) {
      this.fail("The status could not be read", err);
    }
  }

  // -- controls --------------------------------------------------------------------------------------

  buildControls() {
    const form = h("form", { class: "stack", id: "controls-form" },
      h("label", { class: "inline" }, h("input", { type: "checkbox", name: "detection", id: "detection-enabled" }), " Detection on (off: no readings are published)"),
      h("label", {}, "Sensitivity (50: as configured; higher reacts to smaller movements) ",
        h("input", { type: "range", min: 0, max: 100, step: 5, name: "sensitivity", id: "sensitivity" })),
      h("label", {}, "Detector profile ",
        h("select", { name: "profile", id: "profile" },
          h("option", { value: "balanced" }, "balanced"),
          h("option", { value: "responsive" }, "responsive: quicker, twitchier"),
          h("option", { value: "steady" }, "steady: slower, calmer"))),
      h("button", { type: "submit", disabled: !may("config:write") }, "Apply"),
      h("p", { class: "muted", role: "status", id: "controls-note" }));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const f = form.elements;
      try {
        live.controls = await api("api/v1/system/controls", {
          method: "PUT",
          json: { detection_enabled: f.detection.checked, sensitivity: Number(f.sensitivity.value), profile: f.profile.value },
        });
        form.querySelector("#controls-note").textContent = `Applied at ${clock(live.controls.timestamp)}.`;
      } catch (err) {
        this.fail("The controls were not changed", err);
      }
    });
    return form;
  }

  fillControls() {
    const c = live.controls;
    if (!c) return;
    const f = this.controlsForm.elements;
    f.detection.checked = c.detection_enabled;
    f.sensitivity.value = c.sensitivity;
    f.profile.value = c.profile;
  }

  // -- tokens ----------------------------------------------------------------------------------------

  buildTokenForm() {
    const form = h("form", { class: "stack", id: "token-form" },
      h("label", {}, "Name ", h("input", { name: "name", id: "token-name", required: true, maxlength: 100, placeholder: "home-assistant" })),
      h("fieldset", {}, h("legend", {}, "What it may do"),
        ...Object.entries(SCOPES).map(([scope, text]) => h("label", { class: "inline" },
          h("input", { type: "checkbox", name: "scope", value: scope, checked: scope === "pose:read" }), ` ${scope}: ${text}`))),
      h("label", {}, "Expires after ", h("select", { name: "expires", id: "token-expires" },
        ...Object.entries(EXPIRIES).map(([value, label]) => h("option", { value, selected: value === "1y" }, label)))),
      h("button", { type: "submit", id: "create-token" }, "Create token"));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const f = form.elements;
      const scopes = [...form.querySelectorAll("input[name=scope]:checked")].map((i) => i.value);
      try {
        const created = await api("api/v1/auth/tokens", { json: { name: f.name.value.trim(), scopes, expires: f.expires.value } });
        this.showNewToken(created);
        form.reset();
        this.loadTokens();
      } catch (err) {
        this.fail("The token was not created", err);
      }
    });
    return form;
  }

  showNewToken(created) {
    const field = h("input", { id: "new-token", readonly: true, value: created.token, "aria-label": "the new token" });
    const copied = h("span", { class: "muted", role: "status" });
    this.newToken.replaceChildren(
      h("p", {}, h("strong", {}, `Token "${created.name}" created. Copy it now: it is not shown again.`)),
      h("div", { class: "toolbar" }, field,
        h("button", { type: "button", onclick: async () => {
          field.select();
          try { await navigator.clipboard.writeText(created.token); copied.textContent = "copied"; } catch { copied.textContent = "select it and copy"; }
        } }, "Copy"),
        h("button", { type: "button", class: "secondary", onclick: () => { this.newToken.hidden = true; this.newToken.replaceChildren(); } }, "Done"),
        copied));
    this.newToken.hidden = false;
    field.select();
  }

  async loadTokens() {
    try {
      const { tokens } = await api("api/v1/auth/tokens");
      this.tokens.replaceChildren(h("table", {},
        h("thead", {}, h("tr", {}, ...["Name", "Scopes", "Created", "Expires", "Last used", ""].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, ...tokens.map((t) => h("tr", { dataset: { tokenId: t.id, tokenName: t.name } },
          h("td", {}, t.name),
          h("td", {}, t.scopes.join(", ")),
          h("td", {}, date(t.created)),
          h("td", {}, t.expires ? date(t.expires) : "never"),
          h("td", {}, date(t.last_used)),
          h("td", {}, t.revoked
            ? `revoked ${date(t.revoked)}`
            : h("button", { type: "button", class: "danger", onclick: () => this.revoke(t) }, `Revoke ${t.name}`)))))));
      if (!tokens.length) this.tokens.replaceChildren(h("p", { class: "muted" }, "No API tokens yet."));
    } catch (err) {
      this.fail("The tokens could not be read", err);
    }
  }

  async revoke(token) {
    try {
      await api(`api/v1/auth/tokens/${encodeURIComponent(token.id)}`, { method: "DELETE" });
      this.loadTokens();
    } catch (err) {
      this.fail("The token was not revoked", err);
    }
  }

  // -- users -----------------------------------------------------------------------------------------

  buildUserForm() {
    const form = h("form", { class: "stack", id: "user-form" },
      h("label", {}, "Username ", h("input", { name: "username", id: "new-username", required: true, pattern: "[A-Za-z0-9_.@\\-]{1,64}", autocomplete: "off" })),
      h("label", {}, "Password (at least 8 characters) ", h("input", { name: "password", id: "new-password", type: "password", required: true, minlength: 8, autocomplete: "new-password" })),
      h("label", { class: "inline" }, h("input", { type: "checkbox", name: "admin" }), " Admin (may change everything; others may only look)"),
      h("button", { type: "submit" }, "Add user"));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const f = form.elements;
      try {
        await api("api/v1/auth/users", { json: { username: f.username.value, password: f.password.value, is_admin: f.admin.checked } });
        form.reset();
        this.loadUsers();
      } catch (err) {
        this.fail("The user was not added", err);
      }
    });
    return form;
  }

  async loadUsers() {
    try {
      const { users } = await api("api/v1/auth/users");
      this.users.replaceChildren(h("table", {},
        h("thead", {}, h("tr", {}, ...["User", "Role", "Created", ""].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, ...users.map((u) => h("tr", { dataset: { username: u.username } },
          h("td", {}, u.username),
          h("td", {}, u.is_admin ? "admin" : "viewer"),
          h("td", {}, date(u.created)),
          h("td", {}, h("button", { type: "button", class: "danger", onclick: (e) => this.removeUser(u, e.currentTarget) }, `Remove ${u.username}`)))))));
    } catch (err) {
      this.fail("The users could not be read", err);
    }
  }

  async removeUser(user, button) {
    if (button.dataset.confirm !== "yes") {
      button.dataset.confirm = "yes";
      button.textContent = `Really remove ${user.username}?`;
      return;
    }
    try {
      await api(`api/v1/auth/users/${encodeURIComponent(user.username)}`, { method: "DELETE" });
      this.loadUsers();
    } catch (err) {
      this.fail("The user was not removed", err);
    }
  }

  // -- integrations ----------------------------------------------------------------------------------

  /** Every few seconds while the page is shown: which sinks run and how they are doing, for each
   * integration's section (a reply that arrives after the page was left schedules nothing). */
  async pollIntegrations() {
    clearTimeout(this.integrationsTimer);
    try {
      const { sinks } = await api("api/v1/system/performance");
      const byName = new Map(sinks.map((sink) => [sink.name, sink]));
      await Promise.all(this.integrations.map((integration) => integration.update(byName)));
    } catch (err) {
      this.fail("The integrations' status could not be read", err);
    }
    if (this.shown) this.integrationsTimer = setTimeout(() => this.pollIntegrations(), INTEGRATIONS_POLL_MS);
  }
}
