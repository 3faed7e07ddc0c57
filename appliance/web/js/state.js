// What the UI knows now, fed by the live stream; pages listen for the kinds of change they draw.
// Histories for the charts are kept here, so a page shows the last minutes even when opened later.

import { api } from "./api.js";

const SCORE_HISTORY_S = 120;
const MAX_EVENTS = 500;

export const live = {
  room: null, // GET api/v1/system/room
  pose: null, // the latest PoseFrame
  status: null, // the latest SystemStatus
  controls: null, // the latest ControlState
  zones: [], // the ZoneLayout in force
  occupancy: new Map(), // zone id -> ZoneOccupancy
  events: [], // newest first, live ones and the stored last day
  scores: { t: [], room: [], links: new Map() }, // motion scores over the last SCORE_HISTORY_S
};

const bus = new EventTarget();

export function on(kind, listener) {
  const wrapped = (event) => listener(event.detail);
  bus.addEventListener(kind, wrapped);
  return () => bus.removeEventListener(kind, wrapped);
}

function emit(kind, detail) {
  bus.dispatchEvent(new CustomEvent(kind, { detail }));
}

export function addEvents(events) {
  const known = new Set(live.events.map((e) => e.id));
  const fresh = events.filter((e) => !known.has(e.id));
  if (!fresh.length) return;
  live.events = [...fresh, ...live.events].sort((a, b) => b.time - a.time).slice(0, MAX_EVENTS);
  emit("events");
}

function rememberScores(pose) {
  const { scores } = live;
  scores.t.push(pose.timestamp);
  scores.room.push(pose.motion_score);
  const seen = new Set();
  for (const reading of pose.links) {
    if (!scores.links.has(reading.link)) scores.links.set(reading.link, new Array(scores.t.length - 1).fill(null));
    scores.links.get(reading.link).push(reading.score);
    seen.add(reading.link);
  }
  for (const [link, values] of scores.links) if (!seen.has(link)) values.push(null);
  const keep = scores.t.findIndex((t) => t >= pose.timestamp - SCORE_HISTORY_S);
  if (keep > 0) {
    scores.t.splice(0, keep);
    scores.room.splice(0, keep);
    for (const values of scores.links.values()) values.splice(0, keep);
  }
}

export function applyMessage(message) {
  const data = message.data;
  switch (message.type) {
    case "pose_update":
      live.pose = data;
      rememberScores(data);
      emit("pose", data);
      break;
    case "zone_update":
      live.occupancy.set(data.zone_id, data);
      emit("occupancy", data);
      break;
    case "system_status":
      live.status = data;
      emit("status", data);
      break;
    case "control_state":
      live.controls = data;
      emit("controls", data);
      break;
    case "zone_layout": {
      live.zones = data.zones;
      const ids = new Set(data.zones.map((z) => z.id));
      for (const id of live.occupancy.keys()) if (!ids.has(id)) live.occupancy.delete(id);
      emit("zones", data.zones);
      break;
    }
    case "event":
    case "zone_event":
    case "system_alert":
      addEvents([data]);
      break;
    default:
      break;
  }
}

export async function loadRoom() {
  live.room = await api("api/v1/system/room");
  emit("room", live.room);
  return live.room;
}

export function reset() {
  live.pose = live.status = live.controls = null;
  live.zones = [];
  live.occupancy.clear();
  live.events = [];
  live.scores = { t: [], room: [], links: new Map() };
}
