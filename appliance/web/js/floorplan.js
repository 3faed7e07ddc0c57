// The room seen from above, in an SVG whose units are metres: walls, doors, nodes, links that light up
// with their motion score, zones with their occupancy, people (dot, id, activity, top-view skeleton and
// uncertainty circle when the estimator gives them) and, in a simulated room, the ground truth.
// x grows to the right and y downward from the y = 0 wall, as in the analytics heatmap.

import { s } from "./dom.js";
import { activity } from "./words.js";

const PAD_M = 0.35;
const DOOR_WIDTH_M = 0.8;
// COCO torso joints (shoulders, hips): a person's dot sits at their mean, as the tracker places people.
const TORSO = [5, 6, 11, 12];

/** The person's floor position: the estimator's own when it gives one, else the mean of the torso. */
export function personCentre(person) {
  if (person.position_m) return person.position_m;
  const joints = TORSO.map((i) => person.keypoints[i]).filter((k) => k && k.confidence > 0);
  const used = joints.length ? joints : person.keypoints;
  if (!used.length) return null;
  const sum = used.reduce((acc, k) => ({ x: acc.x + k.position_m.x, y: acc.y + k.position_m.y }), { x: 0, y: 0 });
  return { x: sum.x / used.length, y: sum.y / used.length };
}

export function polygonCentre(points) {
  const n = points.length;
  return points.reduce(([x, y], [px, py]) => [x + px / n, y + py / n], [0, 0]);
}

export class FloorPlan {
  constructor(label) {
    this.svg = s("svg", { class: "floorplan", role: "img", "aria-label": label, preserveAspectRatio: "xMidYMid meet" });
    this.layers = {};
    for (const name of ["floor", "zones", "links", "nodes", "truth", "people", "edit"]) {
      this.layers[name] = this.svg.appendChild(s("g", { class: `layer-${name}` }));
    }
    this.room = null;
    this.linkLines = new Map();
    this.edges = [];
  }

  setRoom(room) {
    this.room = room;
    this.edges = room.skeleton_edges;
    const { width_m: w, depth_m: d } = room;
    this.svg.setAttribute("viewBox", `${-PAD_M} ${-PAD_M} ${w + 2 * PAD_M} ${d + 2 * PAD_M}`);
    const floor = this.layers.floor;
    floor.replaceChildren(
      s("rect", { class: "room", x: 0, y: 0, width: w, height: d }),
      ...room.doors.map((door) => this.door(door, w, d)),
      s("text", { class: "dimension", x: w / 2, y: d + PAD_M * 0.75 }, `${w} m`),
      s("text", { class: "dimension", x: -PAD_M * 0.4, y: d / 2, transform: `rotate(-90 ${-PAD_M * 0.4} ${d / 2})` }, `${d} m`),
    );
    const nodes = new Map(room.nodes.map((n) => [n.id, n]));
    this.linkLines.clear();
    this.layers.links.replaceChildren(
      ...room.links.map((link) => {
        const a = nodes.get(link.tx).position_m;
        const b = nodes.get(link.rx).position_m;
        const line = s("line", { class: "link", x1: a.x, y1: a.y, x2: b.x, y2: b.y, "stroke-opacity": 0.25 },
          s("title", {}, `link ${link.id}`));
        this.linkLines.set(link.id, line);
        return line;
      }),
    );
    this.layers.nodes.replaceChildren(
      ...room.nodes.map((node) => {
        const { x, y } = node.position_m;
        const mark = node.role === "tx"
          ? s("path", { class: "node tx", d: `M ${x} ${y - 0.14} L ${x + 0.13} ${y + 0.1} L ${x - 0.13} ${y + 0.1} Z` })
          : s("rect", { class: "node rx", x: x - 0.09, y: y - 0.09, width: 0.18, height: 0.18 });
        const labelY = y < 0.4 ? y + 0.34 : y - 0.18;
        return s("g", {}, mark, s("text", { class: "node-label", x, y: labelY }, node.id),
          s("title", {}, `${node.id}: ${node.kind} ${node.role === "tx" ? "transmitter" : "receiver"}`));
      }),
    );
  }

  door(door, w, d) {
    // On the nearest wall, a gap of DOOR_WIDTH_M centred on the point.
    const walls = [
      [Math.abs(door.x), "x", 0], [Math.abs(w - door.x), "x", w],
      [Math.abs(door.y), "y", 0], [Math.abs(d - door.y), "y", d],
    ].sort((a, b) => a[0] - b[0]);
    const [, axis, at] = walls[0];
    const half = DOOR_WIDTH_M / 2;
    return axis === "x"
      ? s("line", { class: "door", x1: at, y1: door.y - half, x2: at, y2: door.y + half }, s("title", {}, "door"))
      : s("line", { class: "door", x1: door.x - half, y1: at, x2: door.x + half, y2: at }, s("title", {}, "door"));
  }

  /** Link lines brighten with their motion score (1.0 = the detection threshold). */
  setLinks(readings) {
    for (const line of this.linkLines.values()) line.classList.add("silent");
    for (const reading of readings ?? []) {
      const line = this.linkLines.get(reading.link);
      if (!line) continue;
      line.classList.remove("silent");
      line.classList.toggle("moving", reading.motion);
      line.setAttribute("stroke-opacity", (0.2 + 0.8 * Math.min(1, reading.score / 2)).toFixed(2));
    }
  }

  setZones(zones, occupancy, selectedId = null) {
    this.layers.zones.replaceChildren(
      ...zones.map((zone) => {
        const [cx, cy] = polygonCentre(zone.polygon);
        const occ = occupancy?.get(zone.id);
        const count = occ === undefined ? "" : occ.occupancy === null ? "?" : String(occ.occupancy);
        const classes = ["zone", zone.restricted ? "restricted" : "", occ?.occupancy > 0 ? "occupied" : "",
          zone.id === selectedId ? "selected" : ""].filter(Boolean).join(" ");
        return s("g", { class: classes, dataset: { zone: zone.id } },
          s("polygon", { points: zone.polygon.map((p) => p.join(",")).join(" ") }),
          s("text", { class: "zone-label", x: cx, y: cy }, zone.name),
          count && s("text", { class: "zone-count", x: cx, y: cy + 0.26 }, count === "?" ? "? people" : `${count} in it`));
      }),
    );
  }

  setPeople(persons) {
    this.layers.people.replaceChildren(...(persons ?? []).map((p) => this.person(p, "person")));
  }

  setTruth(persons) {
    this.layers.truth.replaceChildren(...(persons ?? []).map((p) => this.person({
      id: p.id, activity: p.activity, position_m: p.position_m,
      keypoints: p.keypoints_m.map((k) => ({ position_m: k, confidence: 1 })),
    }, "truth")));
  }

  person(person, kind) {
    const centre = personCentre(person);
    if (!centre) return s("g");
    const group = s("g", { class: kind });
    if (person.uncertainty_m) group.append(s("circle", { class: "uncertainty", cx: centre.x, cy: centre.y, r: person.uncertainty_m }));
    if (person.keypoints?.length === 17) {
      for (const [a, b] of this.edges) {
        const p = person.keypoints[a].position_m;
        const q = person.keypoints[b].position_m;
        group.append(s("line", { class: "bone", x1: p.x, y1: p.y, x2: q.x, y2: q.y }));
      }
    }
    const label = kind === "truth" ? `true ${person.id}: ${activity(person.activity)}` : `${person.id}: ${activity(person.activity)}`;
    group.append(
      s("circle", { class: "dot", cx: centre.x, cy: centre.y, r: 0.13 }),
      s("text", { class: "person-label", x: centre.x, y: centre.y - 0.22 }, label),
    );
    return group;
  }

  /** Room metres under a pointer event. */
  toRoom(event) {
    const point = new DOMPoint(event.clientX, event.clientY).matrixTransform(this.svg.getScreenCTM().inverse());
    return [Math.round(point.x * 100) / 100, Math.round(point.y * 100) / 100];
  }
}

/** The overlay view: skeletons as the virtual camera of the model card sees them (keypoints' x and y). */
export class OverlayView {
  constructor(label) {
    this.svg = s("svg", { class: "overlay", role: "img", "aria-label": label, viewBox: "0 0 1.7778 1" });
    this.edges = [];
  }

  setRoom(room) {
    this.edges = room.skeleton_edges;
    this.aspect = room.overlay_aspect;
    this.svg.setAttribute("viewBox", `0 0 ${room.overlay_aspect} 1`);
  }

  setPeople(persons) {
    const a = this.aspect ?? 16 / 9;
    this.svg.replaceChildren(
      s("rect", { class: "frame", x: 0, y: 0, width: a, height: 1 }),
      ...(persons ?? []).filter((p) => p.keypoints.length === 17).map((p) => s("g", { class: "person" },
        ...this.edges.map(([i, j]) => s("line", { class: "bone", x1: p.keypoints[i].x * a, y1: p.keypoints[i].y, x2: p.keypoints[j].x * a, y2: p.keypoints[j].y })),
        s("text", { class: "person-label", x: p.bbox.x * a, y: Math.max(0.05, p.bbox.y - 0.02) }, `${p.id}: ${activity(p.activity)}`))),
    );
  }
}
