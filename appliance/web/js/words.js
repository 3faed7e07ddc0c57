// Everything the appliance reports, said in words a person without the jargon understands.

export const ESTIMATORS = {
  motion: {
    name: "Motion detector",
    short: "motion detector",
    says: "Senses movement from how the WiFi signal between the nodes changes. It knows whether someone is "
      + "moving or has moved recently, not how many people there are or where they are.",
  },
  tracker: {
    name: "Trackers and model",
    short: "trackers and model",
    says: "A tracker per person places them on the floor from how each link's signal changes (shadowing, "
      + "echo strength, Doppler, and the angle of arrival on routers with several antennas); the circle "
      + "round a person is how sure it is. A small model, trained on simulated rooms only, counts people "
      + "and tells what they do. Skeletons are drawn from position, heading and posture: rendered, not "
      + "measured joint by joint.",
  },
  model: {
    name: "Count and activity model",
    short: "model",
    says: "A small network, trained on simulated rooms only, that counts people and tells what they do.",
  },
};

export function estimatorName(estimator) {
  return ESTIMATORS[estimator]?.name ?? "Not yet known";
}

/** "From the motion detector, on simulated data": where a reading came from, in one phrase. */
export function provenance(reading) {
  if (!reading) return "No reading yet";
  const by = ESTIMATORS[reading.estimator]?.short ?? reading.estimator;
  const from = reading.simulated ? "the simulated room" : `${reading.source} hardware`;
  return `From the ${by}, on ${from}`;
}

export const SOURCES = {
  simulated: "Simulated room (no WiFi hardware)",
  esp32: "ESP32 nodes",
  atheros: "Atheros routers",
  replay: "A recording played back",
};

export const ACTIVITIES = {
  empty: "nobody",
  standing: "standing",
  walking: "walking",
  sitting: "sitting",
  lying: "lying down",
  falling: "falling",
  waving: "waving",
};

export const activity = (name) => (name ? ACTIVITIES[name] ?? name : "activity unknown");

/** Which filter group an event belongs to. */
export function eventCategory(type) {
  if (type.startsWith("alert.")) return "alerts";
  if (type === "person.entered_zone" || type === "person.left_zone") return "zones";
  if (type.startsWith("person.")) return "people";
  if (type.startsWith("router.") || type.startsWith("system.")) return "system";
  return "analytics";
}

export const EVENT_CATEGORIES = {
  all: "Everything",
  people: "People",
  zones: "Zones",
  alerts: "Alerts",
  system: "Links and system",
  analytics: "Reports",
};

/** One sentence for an event; zoneName maps a zone id to its name. */
export function describeEvent(event, zoneName = (id) => id) {
  const d = event.data ?? {};
  const who = d.person_id !== undefined ? `Person ${d.person_id}` : "Someone";
  const zone = d.zone_id !== undefined ? zoneName(d.zone_id) : "a zone";
  switch (event.type) {
    case "person.detected": return `${who} appeared`;
    case "person.lost": return `${who} is no longer seen`;
    case "person.entered_zone": return `${who} entered ${zone}`;
    case "person.left_zone": return `${who} left ${zone}`;
    case "person.fall_detected": return `${who} may have fallen${d.zone_id ? ` in ${zone}` : ""}`;
    case "person.activity_detected": return `${who} is ${activity(d.activity)}`;
    case "system.started": return `The appliance started (version ${d.version ?? "?"}, ${d.source ?? "?"} source)`;
    case "system.stopped": return "The appliance stopped";
    case "router.connected": return `Link ${d.link} is sending data`;
    case "router.disconnected": return `Link ${d.link} went silent${d.silent_s ? ` (${d.silent_s} s without packets)` : ""}`;
    case "alert.high_occupancy": return `More people than allowed: ${d.occupancy ?? "?"} (limit ${d.max_occupancy ?? "?"})`;
    case "alert.restricted_zone_breach": return `${who} entered the restricted zone ${zone}`;
    case "alert.system_error": return `Something failed: ${d.component ?? "?"}: ${d.error ?? ""}`;
    case "alert.performance_degraded": return "The appliance is falling behind";
    case "analytics.report_generated": return `The ${d.period === "week" ? "weekly" : "daily"} report for ${d.day ?? "?"} is ready`;
    case "analytics.threshold_exceeded": return "A threshold was exceeded";
    default: return event.type;
  }
}

export const SCOPES = {
  "pose:read": "read presence, poses and persons",
  "analytics:read": "read history, reports and events",
  "system:read": "read status, links and configuration",
  "stream:subscribe": "open the live WebSocket and video streams",
  "zone:write": "create, change and delete zones",
  "config:write": "change nodes, alerts and controls",
  "stream:publish": "publish into the pipeline",
  "admin:all": "everything, including users and tokens",
};
