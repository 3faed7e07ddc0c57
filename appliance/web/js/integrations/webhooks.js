// Settings › Webhooks (/api/v1/webhooks): every webhook with its state, backlog, dead letters and last
// attempt; create one (its secret made here, in the browser, and shown until it is saved: the appliance
// never shows it back), switch it on and off, change its events, send a test, read its deliveries, replay
// its dead letters, delete.

import { api, may } from "../api.js";
import { clock, count, h } from "../dom.js";

const SECRET_BYTES = 32;
const DELIVERIES_SHOWN = 20;
const ORIGINS = { config: "from appliance.yaml", api: "made here or through the API" };
const OUTCOMES = { delivered: "delivered", retry: "failed, will retry", dead: "failed for good" };

/** A signing secret from the browser's cryptographic random source: 32 bytes as 64 hex digits. */
export function newSecret() {
  const bytes = crypto.getRandomValues(new Uint8Array(SECRET_BYTES));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** "person.*, alert.high_occupancy" (commas or spaces) -> ["person.*", "alert.high_occupancy"]. */
const parseEvents = (text) => text.split(/[\s,]+/).filter(Boolean);

/** The event names and their category wildcards, from the OpenAPI document's EventType. */
async function eventChoices() {
  const openapi = await api("api/v1/openapi.json");
  const names = openapi.components?.schemas?.EventType?.enum;
  if (!names?.length) throw new Error("the API description names no event types");
  const categories = [...new Set(names.map((n) => n.split(".")[0]))];
  return { names, wildcards: categories.map((c) => `${c}.*`) };
}

function attemptText(status) {
  if (status.last_attempt_at === null) return "no attempt yet";
  const answer = status.last_status === null ? "no answer" : `HTTP ${status.last_status}`;
  const latency = status.last_latency_ms === null ? "" : ` in ${Math.round(status.last_latency_ms)} ms`;
  return `${answer}${latency} at ${clock(status.last_attempt_at)}`;
}

/** A webhook's state and figures: what a poll brings up to date. */
function figures(hook) {
  const s = hook.status;
  return h("div", { class: "webhook-status" },
    h("p", { class: "webhook-state" },
      hook.active ? h("span", { class: "ok" }, "on") : h("span", { class: "warn" }, "paused"),
      ` · ${s.backlog} waiting · `,
      h("span", { class: s.dead_letters ? "bad" : "" }, count(s.dead_letters, "dead letter")),
      ` · ${s.delivered} delivered and ${count(s.failed_attempts, "failed attempt")} since start · last: ${attemptText(s)}`,
      s.next_attempt_at ? ` · next try at ${clock(s.next_attempt_at)}` : ""),
    s.last_error ? h("p", { class: "bad" }, `Last error: ${s.last_error}`) : "");
}

export class WebhooksSection {
  constructor() {
    this.error = h("p", { class: "error", role: "alert", id: "webhooks-error" });
    this.list = h("div", { id: "webhooks" }, h("p", { class: "muted" }, "Reading…"));
    this.created = h("div", { id: "new-webhook-box", hidden: true });
    this.eventNames = h("details", { class: "muted" }, h("summary", {}, "Which events"));
    this.form = may("config:write") ? this.buildForm() : "";
    this.element = h("div", { class: "card", id: "webhooks-card" },
      h("h3", {}, "Webhooks"),
      h("p", { class: "muted" }, "Events POSTed to a URL of yours (Node-RED, Home Assistant's webhook trigger, your server), signed with a secret, retried until delivered, in order."),
      this.error, this.form, this.created,
      h("h4", {}, "Configured webhooks"),
      this.list);
  }

  /** ``sinks``: the sink runner's entries of /api/v1/system/performance by name. The list is drawn
   * when the section comes into view and after each change; a poll only brings each webhook's figures up
   * to date, so it never undoes what the user is typing. */
  update(sinks) {
    const on = sinks.has("webhooks");
    if (this.form) this.form.hidden = !on;
    if (!on) {
      this.listed = false;
      this.list.replaceChildren(h("p", { id: "webhooks-off" },
        h("strong", {}, "Webhooks are off: "), "set ", h("code", {}, "webhooks.enabled: true"), " in appliance.yaml and restart."));
    } else if (!this.listed) {
      this.listed = true;
      this.loadEventNames();
      return this.load();
    } else {
      return this.refreshFigures();
    }
    return undefined;
  }

  hide() {
    this.listed = false;
  }

  fail(what, err) {
    this.error.textContent = `${what}: ${err.message}`;
  }

  async loadEventNames() {
    if (this.eventNames.dataset.loaded) return;
    try {
      const { names, wildcards } = await eventChoices();
      this.eventNames.append(h("p", {}, h("code", {}, "*"), " every event; a category: ", ...wildcards.flatMap((w, i) => [i ? ", " : "", h("code", {}, w)]),
        "; or one event: ", ...names.flatMap((n, i) => [i ? ", " : "", h("code", {}, n)]), "."));
      this.eventNames.dataset.loaded = "yes";
    } catch (err) {
      this.fail("The event names could not be read", err);
    }
  }

  // -- create ----------------------------------------------------------------------------------------

  buildForm() {
    const secret = h("input", { id: "webhook-secret", name: "secret", readonly: true, value: newSecret(), "aria-describedby": "webhook-secret-hint" });
    const form = h("form", { class: "stack", id: "webhook-form" },
      h("label", {}, "URL the events are POSTed to ",
        h("input", { id: "webhook-url", name: "url", type: "url", required: true, maxlength: 2048, placeholder: "http://192.168.1.30:1880/invispose" })),
      h("label", {}, "Events (separated by commas) ",
        h("input", { id: "webhook-events", name: "events", required: true, value: "*", autocomplete: "off", spellcheck: "false" })),
      this.eventNames,
      h("label", {}, "Secret (signs every delivery) ", secret),
      h("p", { class: "muted", id: "webhook-secret-hint" },
        "Made in this browser. Give it to the receiver, which checks the X-InvisPose-Signature header with it; once the webhook is created the appliance never shows it again."),
      h("div", { class: "toolbar" },
        h("button", { type: "button", class: "secondary", onclick: () => { secret.value = newSecret(); } }, "New secret"),
        h("button", { type: "button", class: "secondary", onclick: () => copy(secret) }, "Copy secret")),
      h("label", { class: "inline" }, h("input", { type: "checkbox", name: "active", id: "webhook-active", checked: true }), " Active (deliver from now on)"),
      h("button", { type: "submit", id: "create-webhook" }, "Create webhook"));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const f = form.elements;
      const body = { url: f.url.value.trim(), events: parseEvents(f.events.value), secret: secret.value, active: f.active.checked };
      try {
        const created = await api("api/v1/webhooks", { json: body });
        this.error.textContent = "";
        this.showCreated(created, body.secret);
        form.reset();
        secret.value = newSecret();
        this.load();
      } catch (err) {
        this.fail("The webhook was not created", err);
      }
    });
    return form;
  }

  showCreated(created, secret) {
    const field = h("input", { id: "new-webhook-secret", readonly: true, value: secret, "aria-label": "the new webhook's secret" });
    this.created.replaceChildren(
      h("p", {}, h("strong", {}, `Webhook ${created.id} created. Its secret is shown here for the last time: copy it to the receiver now.`)),
      h("div", { class: "toolbar" }, field,
        h("button", { type: "button", onclick: () => copy(field) }, "Copy"),
        h("button", { type: "button", class: "secondary", onclick: () => { this.created.hidden = true; this.created.replaceChildren(); } }, "Done")));
    this.created.hidden = false;
  }

  // -- the list --------------------------------------------------------------------------------------

  async load() {
    try {
      this.draw((await api("api/v1/webhooks")).items);
    } catch (err) {
      this.fail("The webhooks could not be read", err);
    }
  }

  draw(items) {
    this.drawn = items.map((hook) => hook.id).join("\n");
    this.list.replaceChildren(...items.map((hook) => this.card(hook)));
    if (!items.length) this.list.replaceChildren(h("p", { class: "muted" }, "No webhooks yet."));
  }

  async refreshFigures() {
    let items;
    try {
      ({ items } = await api("api/v1/webhooks"));
    } catch (err) {
      this.fail("The webhooks could not be read", err);
      return;
    }
    if (items.map((hook) => hook.id).join("\n") !== this.drawn) {
      this.draw(items); // made or deleted elsewhere
      return;
    }
    for (const hook of items) {
      const card = this.list.querySelector(`[data-webhook-id="${CSS.escape(hook.id)}"]`);
      card.querySelector(".webhook-status").replaceWith(figures(hook));
      const replay = card.querySelector(".replay");
      if (replay) replay.hidden = !hook.status.dead_letters;
    }
  }

  card(hook) {
    const writable = may("config:write");
    const result = h("p", { class: "test-result", role: "status" });
    const deliveries = h("div", { class: "deliveries table-wrap" });
    const events = h("input", { name: "events", value: hook.events.join(", "), "aria-label": `events of ${hook.id}`, disabled: !writable, spellcheck: "false" });
    const active = h("input", { type: "checkbox", name: "active", checked: hook.active, disabled: !writable });
    const edit = h("form", { class: "toolbar webhook-edit" },
      h("label", { class: "inline" }, active, " Active"),
      h("label", { class: "inline grow" }, "Events ", events),
      writable ? h("button", { type: "submit", class: "secondary" }, "Save") : "");
    const save = async () => {
      try {
        await api(`api/v1/webhooks/${encodeURIComponent(hook.id)}`, {
          method: "PUT",
          json: { url: hook.url, events: parseEvents(events.value), headers: hook.headers, retry_policy: hook.retry_policy, active: active.checked },
        });
        this.error.textContent = "";
        this.load();
      } catch (err) {
        this.fail(`Webhook ${hook.id} was not changed`, err);
      }
    };
    edit.addEventListener("submit", (event) => { event.preventDefault(); save(); });
    active.addEventListener("change", save);
    // Named by its URL, so "Send test" or "Delete" is heard with the webhook it belongs to.
    return h("article", { class: "webhook", dataset: { webhookId: hook.id }, "aria-labelledby": `webhook-${hook.id}` },
      h("h5", { id: `webhook-${hook.id}` }, h("code", {}, hook.url)),
      h("p", { class: "muted" }, `${hook.id}, ${ORIGINS[hook.origin] ?? hook.origin}`),
      figures(hook),
      edit,
      h("div", { class: "toolbar" },
        writable ? h("button", { type: "button", class: "secondary", onclick: () => this.test(hook, result) }, "Send test") : "",
        h("button", { type: "button", class: "secondary", "aria-expanded": "false", onclick: (e) => this.toggleDeliveries(hook, deliveries, e.currentTarget) }, "Deliveries"),
        writable ? h("button", { type: "button", class: "secondary replay", hidden: !hook.status.dead_letters, onclick: () => this.replay(hook, result) }, "Replay dead letters") : "",
        writable ? h("button", { type: "button", class: "danger", onclick: (e) => this.remove(hook, e.currentTarget) }, "Delete") : ""),
      result, deliveries);
  }

  async test(hook, result) {
    result.className = "test-result muted";
    result.textContent = "Sending a webhook.test delivery…";
    try {
      const answer = await api(`api/v1/webhooks/${encodeURIComponent(hook.id)}/test`, { method: "POST" });
      const status = answer.status === null ? "no answer" : `HTTP ${answer.status}`;
      result.className = `test-result ${answer.delivered ? "ok" : "bad"}`;
      result.textContent = answer.delivered
        ? `Test delivered: the receiver answered ${status} in ${Math.round(answer.latency_ms)} ms.`
        : `Test not delivered: ${status}${answer.error ? `, ${answer.error}` : ""} (after ${Math.round(answer.latency_ms)} ms).`;
    } catch (err) {
      result.className = "test-result bad";
      result.textContent = `The test was not sent: ${err.message}`;
    }
  }

  async replay(hook, result) {
    try {
      const { replayed } = await api(`api/v1/webhooks/${encodeURIComponent(hook.id)}/dead-letters/replay`, { json: {} });
      this.error.textContent = "";
      result.className = "test-result";
      result.textContent = `${count(replayed.length, "dead letter")} sent again, before newer events.`;
    } catch (err) {
      result.className = "test-result bad";
      result.textContent = `Nothing was replayed: ${err.message}`;
    }
  }

  async toggleDeliveries(hook, container, button) {
    if (button.getAttribute("aria-expanded") === "true") {
      container.replaceChildren();
      button.setAttribute("aria-expanded", "false");
      return;
    }
    button.setAttribute("aria-expanded", "true");
    try {
      const { items } = await api(`api/v1/webhooks/${encodeURIComponent(hook.id)}/deliveries?limit=${DELIVERIES_SHOWN}`);
      if (!items.length) {
        container.replaceChildren(h("p", { class: "muted" }, "No deliveries yet (tests are not logged)."));
        return;
      }
      container.replaceChildren(h("table", {},
        h("caption", { class: "muted" }, "Latest attempts, newest first"),
        h("thead", {}, h("tr", {}, ...["At", "Event", "Attempt", "Result", "Error"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, ...items.map((a) => h("tr", { dataset: { deliveryId: a.delivery_id, outcome: a.outcome } },
          h("td", {}, clock(a.at)),
          h("td", {}, a.event_type),
          h("td", {}, String(a.attempt)),
          h("td", { class: a.outcome === "delivered" ? "ok" : "bad" },
            `${OUTCOMES[a.outcome] ?? a.outcome}: ${a.status === null ? "no answer" : `HTTP ${a.status}`}, ${Math.round(a.latency_ms)} ms`),
          h("td", {}, a.error ?? ""))))));
    } catch (err) {
      container.replaceChildren(h("p", { class: "error" }, `The deliveries could not be read: ${err.message}`));
    }
  }

  async remove(hook, button) {
    if (button.dataset.confirm !== "yes") {
      button.dataset.confirm = "yes";
      button.textContent = "Really delete it, with its backlog and log?";
      return;
    }
    try {
      await api(`api/v1/webhooks/${encodeURIComponent(hook.id)}`, { method: "DELETE" });
      this.error.textContent = "";
      this.load();
    } catch (err) {
      this.fail(`Webhook ${hook.id} was not deleted`, err);
    }
  }
}

async function copy(field) {
  field.select();
  try { await navigator.clipboard.writeText(field.value); } catch { /* the text stays selected: copy it by hand */ }
}
