// Zones: draw, move, reshape and delete zone polygons on the floor plan with a mouse or a finger (or
// type the corners), while the live readings keep moving under them. Every change is saved through the
// configuration API at once and applied live; the room's occupancy alert is set here too.

import { api, may } from "../api.js";
import { h, s } from "../dom.js";
import { FloorPlan } from "../floorplan.js";
import { live, on } from "../state.js";

const CLOSE_TO_FIRST_M = 0.2;
const KEY_STEP_M = 0.1;

const clone = (zones) => zones.map((z) => ({ ...z, polygon: z.polygon.map(([x, y]) => [x, y]) }));
const round = (v) => Math.round(v * 100) / 100;

export function zoneId(name, taken) {
  const base = name.toLowerCase().normalize("NFKD").replace(/[^a-z0-9]+/g, "_").replace(/^_+|_+$/g, "").slice(0, 28) || "zone";
  let id = base;
  for (let i = 2; taken.has(id); i += 1) id = `${base}_${i}`;
  return id;
}

function parsePolygon(text) {
  const points = text.split(";").map((pair) => pair.trim()).filter(Boolean).map((pair) => pair.split(",").map(Number));
  if (points.length < 3 || points.some((p) => p.length !== 2 || p.some((v) => !Number.isFinite(v)))) {
    throw new Error("write at least three corners as x, y in metres, separated by semicolons: 0.5, 1; 2, 1; 2, 2.5");
  }
  return points;
}

const formatPolygon = (polygon) => polygon.map(([x, y]) => `${x}, ${y}`).join("; ");

export class ZonesPage {
  mount(section) {
    this.plan = new FloorPlan("Floor plan for drawing zones");
    this.plan.svg.classList.add("editing");
    this.plan.svg.setAttribute("tabindex", "0");
    this.zones = clone(live.zones);
    this.selected = null;
    this.draft = null; // corners of a zone being drawn
    this.drag = null;
    const editable = may("zone:write");
    this.drawButton = h("button", { type: "button", id: "draw-zone", onclick: () => this.startDrawing(), disabled: !editable }, "Draw a new zone");
    this.finishButton = h("button", { type: "button", id: "finish-zone", hidden: true, onclick: () => this.finishDrawing() }, "Finish");
    this.cancelButton = h("button", { type: "button", class: "secondary", hidden: true, onclick: () => this.cancelDrawing() }, "Cancel");
    this.hint = h("p", { class: "muted", id: "zone-hint" }, editable
      ? "Select a zone to rename, restrict, move (drag it, or use the arrow keys on the plan), reshape (drag a corner) or delete it."
      : "Your account may look at zones but not change them (it needs zone:write).");
    this.message = h("p", { class: "error", role: "alert", id: "zone-error" });
    this.list = h("ul", { class: "plain zone-list" });
    this.form = this.zoneForm();
    this.alertForm = this.occupancyForm();
    section.replaceChildren(
      h("h2", { id: "title-zones", tabindex: -1 }, "Zones"),
      h("div", { class: "columns" },
        h("div", { class: "card plan-card" },
          h("div", { class: "toolbar" }, this.drawButton, this.finishButton, this.cancelButton),
          this.hint,
          this.plan.svg,
          this.message),
        h("div", { class: "card" },
          h("h3", {}, "Zones"),
          this.list,
          this.form,
          h("h3", {}, "Alert threshold"),
          this.alertForm)),
    );
    this.plan.svg.addEventListener("pointerdown", (e) => this.pointerDown(e));
    this.plan.svg.addEventListener("pointermove", (e) => this.pointerMove(e));
    this.plan.svg.addEventListener("pointerup", (e) => this.pointerUp(e));
    this.plan.svg.addEventListener("pointercancel", () => { this.drag = null; this.render(); });
    this.plan.svg.addEventListener("keydown", (e) => this.key(e));
    this.subscriptions = [];
  }

  show() {
    this.subscriptions = [
      on("room", () => this.drawRoom()),
      on("zones", () => { if (!this.drag) { this.zones = clone(live.zones); this.render(); } }),
      on("occupancy", () => this.render()),
      on("pose", (pose) => { this.plan.setLinks(pose.links); this.plan.setPeople(pose.persons); }),
    ];
    this.zones = clone(live.zones);
    this.drawRoom();
    this.loadAlerts();
  }

  hide() {
    for (const off of this.subscriptions) off();
    this.subscriptions = [];
    this.cancelDrawing();
  }

  drawRoom() {
    if (!live.room) return;
    this.plan.setRoom(live.room);
    this.render();
  }

  // -- drawing ---------------------------------------------------------------------------------------

  clamp([x, y]) {
    return [round(Math.min(live.room.width_m, Math.max(0, x))), round(Math.min(live.room.depth_m, Math.max(0, y)))];
  }

  startDrawing() {
    this.select(null);
    this.draft = [];
    this.drawButton.hidden = true;
    this.finishButton.hidden = false;
    this.cancelButton.hidden = false;
    this.finishButton.disabled = true;
    this.hint.textContent = "Click or tap each corner of the zone on the plan; click the first corner again (or Finish) to close it. Escape cancels.";
    this.plan.svg.focus();
    this.render();
  }

  cancelDrawing() {
    this.draft = null;
    this.drawButton.hidden = false;
    this.finishButton.hidden = true;
    this.cancelButton.hidden = true;
    this.render();
  }

  finishDrawing() {
    if (!this.draft || this.draft.length < 3) return;
    const polygon = this.draft;
    this.cancelDrawing();
    this.selected = "new";
    this.fillForm({ id: "", name: "", restricted: false, polygon });
    this.form.elements.name.focus();
    this.hint.textContent = "Name the zone and save it.";
    this.render();
  }

  pointerDown(event) {
    if (!live.room) return;
    const point = this.clamp(this.plan.toRoom(event));
    if (this.draft) {
      const first = this.draft[0];
      if (this.draft.length >= 3 && Math.hypot(point[0] - first[0], point[1] - first[1]) < CLOSE_TO_FIRST_M) {
        this.finishDrawing();
        return;
      }
      this.draft.push(point);
      this.finishButton.disabled = this.draft.length < 3;
      this.render();
      return;
    }
    if (!may("zone:write")) return;
    const vertex = event.target.closest("[data-vertex]");
    const zoneElement = event.target.closest("[data-zone]");
    if (vertex && this.selectedZone()) {
      this.drag = { kind: "vertex", index: Number(vertex.dataset.vertex), start: point, moved: false };
    } else if (zoneElement) {
      this.select(zoneElement.dataset.zone);
      const zone = this.selectedZone();
      this.drag = { kind: "zone", start: point, original: zone.polygon.map((p) => [...p]), moved: false };
    } else {
      this.select(null);
      return;
    }
    this.plan.svg.setPointerCapture(event.pointerId);
    event.preventDefault();
  }

  pointerMove(event) {
    if (!this.drag) return;
    const zone = this.selectedZone();
    const point = this.clamp(this.plan.toRoom(event));
    if (this.drag.kind === "vertex") {
      zone.polygon[this.drag.index] = point;
    } else {
      const dx = point[0] - this.drag.start[0];
      const dy = point[1] - this.drag.start[1];
      zone.polygon = this.drag.original.map(([x, y]) => this.clamp([x + dx, y + dy]));
    }
    this.drag.moved = true;
    this.render();
  }

  async pointerUp() {
    const drag = this.drag;
    this.drag = null;
    if (drag?.moved) await this.save(this.selectedZone(), false);
  }

  key(event) {
    if (event.key === "Escape") {
      if (this.draft) this.cancelDrawing(); else this.select(null);
      return;
    }
    const steps = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    const zone = this.selectedZone();
    if (!steps[event.key] || !zone || !may("zone:write")) return;
    event.preventDefault();
    const [dx, dy] = steps[event.key];
    zone.polygon = zone.polygon.map(([x, y]) => this.clamp([x + dx * KEY_STEP_M, y + dy * KEY_STEP_M]));
    this.render();
    clearTimeout(this.keySave);
    this.keySave = setTimeout(() => this.save(zone, false), 400);
  }

  // -- selection and forms ---------------------------------------------------------------------------

  selectedZone() {
    return this.zones.find((z) => z.id === this.selected) ?? null;
  }

  select(id) {
    this.selected = id;
    this.message.textContent = "";
    const zone = this.selectedZone();
    if (zone) this.fillForm(zone);
    else this.form.hidden = true;
    this.render();
  }

  zoneForm() {
    const form = h("form", { id: "zone-form", class: "stack", hidden: true },
      h("label", {}, "Name ", h("input", { name: "name", id: "zone-name", required: true, maxlength: 100 })),
      h("label", { class: "inline" }, h("input", { type: "checkbox", name: "restricted", id: "zone-restricted" }),
        " Restricted: entering it raises an alert"),
      h("label", {}, "Corners (x, y in metres; separated by semicolons) ",
        h("textarea", { name: "polygon", id: "zone-polygon", rows: 2, required: true })),
      h("div", { class: "toolbar" },
        h("button", { type: "submit", id: "save-zone" }, "Save zone"),
        h("button", { type: "button", class: "danger", id: "delete-zone", onclick: () => this.remove() }, "Delete zone"),
        h("button", { type: "button", class: "danger", id: "confirm-delete", hidden: true, onclick: () => this.remove(true) }, "Really delete")));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submitForm();
    });
    return form;
  }

  fillForm(zone) {
    const f = this.form.elements;
    f.name.value = zone.name;
    f.restricted.checked = zone.restricted;
    f.polygon.value = formatPolygon(zone.polygon);
    this.form.hidden = false;
    this.form.querySelector("#delete-zone").hidden = !zone.id;
    this.form.querySelector("#confirm-delete").hidden = true;
    for (const element of this.form.elements) element.disabled = !may("zone:write");
    this.editing = zone;
  }

  async submitForm() {
    const f = this.form.elements;
    let polygon;
    try {
      polygon = parsePolygon(f.polygon.value);
    } catch (err) {
      this.message.textContent = err.message;
      return;
    }
    const creating = !this.editing.id;
    const id = creating ? zoneId(f.name.value, new Set(this.zones.map((z) => z.id))) : this.editing.id;
    await this.save({ id, name: f.name.value.trim(), restricted: f.restricted.checked, polygon }, creating);
  }

  async save(zone, creating) {
    this.message.textContent = "";
    try {
      const saved = await api(creating ? "api/v1/config/zones" : `api/v1/config/zones/${encodeURIComponent(zone.id)}`, {
        method: creating ? "POST" : "PUT",
        json: { id: zone.id, name: zone.name, polygon: zone.polygon, restricted: zone.restricted },
      });
      const index = this.zones.findIndex((z) => z.id === saved.id);
      if (index >= 0) this.zones[index] = saved; else this.zones.push(saved);
      this.selected = saved.id;
      this.fillForm(saved);
      this.hint.textContent = `Saved ${saved.name}; the appliance uses it from its next reading.`;
      this.render();
    } catch (err) {
      this.message.textContent = `Not saved: ${err.message}`;
      this.zones = clone(live.zones);
      this.render();
    }
  }

  async remove(confirmed = false) {
    const zone = this.selectedZone();
    if (!zone) return;
    if (!confirmed) {
      this.form.querySelector("#confirm-delete").hidden = false;
      this.form.querySelector("#confirm-delete").textContent = `Really delete ${zone.name}?`;
      return;
    }
    try {
      await api(`api/v1/config/zones/${encodeURIComponent(zone.id)}`, { method: "DELETE" });
      this.zones = this.zones.filter((z) => z.id !== zone.id);
      this.hint.textContent = `Deleted ${zone.name}.`;
      this.select(null);
    } catch (err) {
      this.message.textContent = `Not deleted: ${err.message}`;
    }
  }

  occupancyForm() {
    const input = h("input", { type: "number", min: 0, max: 1000, step: 1, name: "max", id: "max-occupancy", placeholder: "off" });
    const note = h("p", { class: "muted", role: "status" });
    const form = h("form", { class: "stack", id: "alert-form" },
      h("label", {}, "Alert when more people than this are in the room (empty: no alert) ", input),
      h("button", { type: "submit", disabled: !may("config:write") }, "Save threshold"),
      note);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        const body = {
          max_occupancy: input.value === "" ? null : Number(input.value),
          restricted_zone_ids: this.zones.filter((z) => z.restricted).map((z) => z.id),
        };
        const saved = await api("api/v1/config/alerts", { method: "PUT", json: body });
        note.textContent = saved.max_occupancy === null ? "No occupancy alert." : `Alert above ${saved.max_occupancy} people.`;
      } catch (err) {
        note.textContent = `Not saved: ${err.message}`;
      }
    });
    this.maxInput = input;
    return form;
  }

  async loadAlerts() {
    try {
      const alerts = await api("api/v1/config/alerts");
      this.maxInput.value = alerts.max_occupancy ?? "";
    } catch (err) {
      this.message.textContent = `Cannot read the alert threshold: ${err.message}`;
    }
  }

  // -- drawing the state -----------------------------------------------------------------------------

  render() {
    if (!live.room) return;
    this.plan.setZones(this.zones, live.occupancy, this.selected);
    const edit = [];
    const zone = this.selectedZone();
    if (zone && may("zone:write")) {
      zone.polygon.forEach(([x, y], i) => edit.push(s("circle", { class: "handle", cx: x, cy: y, r: 0.09, dataset: { vertex: i } })));
    }
    if (this.selected === "new" && this.editing?.polygon) {
      edit.push(s("polygon", { class: "draft", points: this.editing.polygon.map((p) => p.join(",")).join(" ") }));
    }
    if (this.draft?.length) {
      edit.push(s("polyline", { class: "draft", points: this.draft.map((p) => p.join(",")).join(" ") }));
      this.draft.forEach(([x, y], i) => edit.push(s("circle", { class: i === 0 ? "handle first" : "handle", cx: x, cy: y, r: 0.08 })));
    }
    this.plan.layers.edit.replaceChildren(...edit);
    this.list.replaceChildren(...this.zones.map((z) => {
      const occ = live.occupancy.get(z.id);
      const count = occ === undefined ? "" : occ.occupancy === null ? " · occupancy unknown" : ` · ${occ.occupancy} in it`;
      return h("li", {},
        h("button", { type: "button", class: z.id === this.selected ? "link selected" : "link", dataset: { zone: z.id },
          "aria-pressed": z.id === this.selected ? "true" : "false", onclick: () => this.select(z.id) }, z.name),
        h("span", { class: "muted" }, `${z.restricted ? " · restricted" : ""}${count}`));
    }));
    if (!this.zones.length) this.list.replaceChildren(h("li", { class: "muted" }, "No zones yet."));
  }
}
