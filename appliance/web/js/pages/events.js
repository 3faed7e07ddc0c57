// Events: the live event log with filters, and the stored events of the last day.

import { api, may } from "../api.js";
import { clock, h } from "../dom.js";
import { addEvents, live, on } from "../state.js";
import { EVENT_CATEGORIES, describeEvent, eventCategory } from "../words.js";

const DAY_S = 86_400;
const PAGE = 200;

export class EventsPage {
  mount(section) {
    this.category = h("select", { id: "event-category", onchange: () => this.render() },
      ...Object.entries(EVENT_CATEGORIES).map(([value, label]) => h("option", { value }, label)));
    this.zone = h("select", { id: "event-zone", onchange: () => this.render() });
    this.search = h("input", { type: "search", id: "event-search", placeholder: "person 3, rx2, sofa…", oninput: () => this.render() });
    this.list = h("ol", { class: "event-list", id: "event-list", "aria-live": "polite" });
    this.more = h("button", { type: "button", class: "secondary", hidden: true, onclick: () => this.loadStored() }, "Load older events");
    this.note = h("p", { class: "muted", id: "events-note" });
    section.replaceChildren(
      h("h2", { id: "title-events", tabindex: -1 }, "Events"),
      h("form", { class: "filters", onsubmit: (e) => e.preventDefault() },
        h("label", {}, "Show ", this.category),
        h("label", {}, "Zone ", this.zone),
        h("label", {}, "Containing ", this.search)),
      this.note,
      this.list,
      this.more,
    );
    this.skip = 0;
    this.subscriptions = [];
  }

  show() {
    this.subscriptions = [on("events", () => this.render()), on("zones", () => this.drawZones())];
    this.drawZones();
    this.render();
    if (this.skip === 0) this.loadStored();
  }

  hide() {
    for (const off of this.subscriptions) off();
    this.subscriptions = [];
  }

  async loadStored() {
    if (!may("analytics:read")) {
      this.note.textContent = "Live events only: reading the stored ones needs analytics:read.";
      return;
    }
    try {
      const since = Date.now() / 1000 - DAY_S;
      const page = await api(`api/v1/events?start_time=${since}&limit=${PAGE}&skip=${this.skip}`);
      this.skip += page.items.length;
      this.more.hidden = !page.has_more;
      this.note.textContent = "Live events appear at the top as they happen; below them, the last 24 hours.";
      addEvents(page.items);
      this.render();
    } catch (err) {
      this.note.textContent = `The stored events could not be read: ${err.message}`;
    }
  }

  drawZones() {
    const chosen = this.zone.value;
    this.zone.replaceChildren(h("option", { value: "" }, "any"), ...live.zones.map((z) => h("option", { value: z.id }, z.name)));
    this.zone.value = live.zones.some((z) => z.id === chosen) ? chosen : "";
  }

  render() {
    const names = new Map(live.zones.map((z) => [z.id, z.name]));
    const zoneName = (id) => names.get(id) ?? id;
    const category = this.category.value;
    const zone = this.zone.value;
    const text = this.search.value.trim().toLowerCase();
    const shown = live.events.filter((event) => {
      if (category !== "all" && eventCategory(event.type) !== category) return false;
      if (zone && event.data?.zone_id !== zone) return false;
      return !text || describeEvent(event, zoneName).toLowerCase().includes(text) || event.type.includes(text);
    });
    this.list.replaceChildren(...shown.map((event) => h("li", { class: `event ${eventCategory(event.type)}`, dataset: { type: event.type } },
      h("time", { datetime: new Date(event.time * 1000).toISOString() }, clock(event.time)),
      h("span", { class: "category" }, EVENT_CATEGORIES[eventCategory(event.type)]),
      h("span", { class: "what" }, describeEvent(event, zoneName)))));
    if (!shown.length) this.list.replaceChildren(h("li", { class: "muted" }, live.events.length ? "No event matches these filters." : "No events yet."));
  }
}
