// Live: the floor plan with links, people and zones; the overlay view; occupancy per zone; the motion
// score over the last two minutes; and, in the simulated room, the ground truth beside the estimate.

import { api } from "../api.js";
import { timeChart } from "../charts.js";
import { h } from "../dom.js";
import { FloorPlan, OverlayView } from "../floorplan.js";
import { live, on } from "../state.js";
import { ESTIMATORS, activity, estimatorName, provenance } from "../words.js";

const TRUTH_POLL_MS = 1000;
const CHART_EVERY_MS = 500;

export class LivePage {
  mount(section) {
    this.plan = new FloorPlan("Floor plan of the room: nodes, links, zones and people");
    this.overlay = new OverlayView("Overlay view: skeletons as a camera in the corner would see them");
    this.tiles = {
      presence: h("div", { class: "value", id: "presence" }, "–"),
      motion: h("div", { class: "value", id: "motion" }, "–"),
      people: h("div", { class: "value", id: "people-count" }, "–"),
      estimator: h("div", { class: "value", id: "estimator" }, "–"),
    };
    this.provenance = h("p", { id: "provenance", class: "provenance" });
    this.estimatorSays = h("p", { id: "estimator-says", class: "muted" });
    this.truthToggle = h("input", { type: "checkbox", id: "truth-toggle", onchange: () => this.pollTruth() });
    this.truthLabel = h("label", { class: "toggle", hidden: true }, this.truthToggle, " Show the simulation's ground truth beside the estimate");
    this.truthText = h("p", { id: "truth", class: "truth", hidden: true });
    this.zoneList = h("ul", { id: "zone-occupancy", class: "plain" });
    this.overlayNote = h("p", { class: "muted", id: "overlay-note" });
    this.chartBox = h("div", { class: "chart" });
    const tile = (label, value, id) => h("div", { class: "tile", id }, h("div", { class: "label" }, label), value);
    section.replaceChildren(
      h("h2", { id: "title-live", tabindex: -1 }, "Live"),
      h("div", { class: "tiles" },
        tile("Presence", this.tiles.presence, "presence-tile"),
        tile("Motion", this.tiles.motion, "motion-tile"),
        tile("People", this.tiles.people),
        tile("Produced by", this.tiles.estimator)),
      this.provenance,
      this.estimatorSays,
      h("div", { class: "columns" },
        h("div", { class: "card plan-card" },
          h("h3", {}, "Floor plan"),
          this.plan.svg,
          h("p", { class: "legend muted" },
            h("span", { class: "key key-tx" }), "transmitter ", h("span", { class: "key key-rx" }), "receiver ",
            h("span", { class: "key key-link" }), "link (brighter: more motion) ",
            h("span", { class: "key key-person" }), "person ", h("span", { class: "key key-truth" }), "ground truth"),
          this.truthLabel,
          this.truthText),
        h("div", { class: "card" },
          h("h3", {}, "Who is in each zone"),
          this.zoneList,
          h("h3", {}, "Overlay view"),
          this.overlay.svg,
          this.overlayNote)),
      h("div", { class: "card" },
        h("h3", {}, "Motion score, last 2 minutes ", h("span", { class: "muted" }, "(1.0 is the detection threshold)")),
        this.chartBox),
    );
    this.chart = timeChart(this.chartBox, {
      series: [{ label: "room" }, { label: "threshold", colour: "#e3b341", dash: [6, 4], width: 1 }],
      yLabel: "score",
    });
    this.lastChart = 0;
    this.subscriptions = [];
  }

  show() {
    this.subscriptions = [
      on("room", () => this.drawRoom()),
      on("pose", (pose) => this.drawPose(pose)),
      on("zones", () => this.drawZones()),
      on("occupancy", () => this.drawZones()),
      on("status", () => this.drawSimulated()),
    ];
    this.drawRoom();
    if (this.truthToggle.checked) this.pollTruth();
  }

  hide() {
    for (const off of this.subscriptions) off();
    this.subscriptions = [];
    clearTimeout(this.truthTimer);
  }

  drawRoom() {
    if (!live.room) return;
    this.plan.setRoom(live.room);
    this.overlay.setRoom(live.room);
    this.drawZones();
    if (live.pose) this.drawPose(live.pose);
  }

  drawSimulated() {
    const simulated = live.status?.simulated ?? live.pose?.simulated ?? false;
    this.truthLabel.hidden = !simulated;
    if (!simulated) this.truthToggle.checked = false;
  }

  drawPose(pose) {
    const t = this.tiles;
    t.presence.textContent = pose.presence ? "present" : "empty";
    t.motion.textContent = pose.motion ? "moving" : "still";
    t.people.textContent = pose.person_count === null ? "cannot count" : String(pose.person_count);
    t.estimator.textContent = estimatorName(pose.estimator);
    t.presence.parentElement.classList.toggle("on", pose.presence);
    t.motion.parentElement.classList.toggle("on", pose.motion);
    this.provenance.textContent = `${provenance(pose)}. Confidence ${Math.round(pose.confidence * 100)} %.`;
    this.estimatorSays.textContent = ESTIMATORS[pose.estimator]?.says ?? "";
    this.drawSimulated();
    if (live.room) {
      this.plan.setLinks(pose.links);
      this.plan.setPeople(pose.persons);
      this.overlay.setPeople(pose.persons);
    }
    this.overlay.svg.toggleAttribute("hidden", pose.estimator !== "tracker");
    this.overlayNote.textContent = pose.estimator === "tracker"
      ? (pose.persons.length
        ? "Skeletons are rendered from each person's position, heading and posture, not measured."
        : "Nobody tracked right now.")
      : "Skeletons appear here once the trackers run; the motion detector gives none.";
    const now = performance.now();
    if (now - this.lastChart >= CHART_EVERY_MS) {
      this.lastChart = now;
      const { t: times, room } = live.scores;
      this.chart.update([times, room, times.map(() => 1)]);
    }
  }

  drawZones() {
    if (live.room) this.plan.setZones(live.zones, live.occupancy);
    this.zoneList.replaceChildren(
      ...live.zones.map((zone) => {
        const occ = live.occupancy.get(zone.id);
        const text = occ === undefined
          ? "no reading yet"
          : occ.occupancy === null
            ? `unknown: the ${ESTIMATORS[occ.estimator]?.short ?? occ.estimator} cannot tell who is where`
            : `${occ.occupancy} ${occ.occupancy === 1 ? "person" : "people"}${occ.person_ids.length ? ` (${occ.person_ids.join(", ")})` : ""}`;
        return h("li", { dataset: { zone: zone.id } }, h("strong", {}, zone.name), zone.restricted ? " (restricted)" : "", `: ${text}`);
      }),
    );
    if (!live.zones.length) this.zoneList.replaceChildren(h("li", { class: "muted" }, "No zones yet: draw them on the Zones page."));
  }

  async pollTruth() {
    clearTimeout(this.truthTimer);
    const wanted = this.truthToggle.checked;
    this.truthText.hidden = !wanted;
    if (!wanted) {
      this.plan.setTruth([]);
      return;
    }
    try {
      const status = await api("api/v1/system/status");
      const truth = status.simulation?.ground_truth;
      if (!this.truthToggle.checked) return;
      this.plan.setTruth(truth?.persons ?? []);
      this.truthText.textContent = !truth
        ? "The simulator has not started yet."
        : truth.person_count === 0
          ? "Really in the room: nobody."
          : `Really in the room: ${truth.persons.map((p) => `person ${p.id} ${activity(p.activity)}`).join(", ")} (dashed on the plan).`;
    } catch (err) {
      this.truthText.textContent = `The ground truth is not available: ${err.message}`;
    }
    this.truthTimer = setTimeout(() => this.pollTruth(), TRUTH_POLL_MS);
  }
}
