// Settings › Video: the overlay video (the skeletons in the virtual camera) from /api/v1/stream/status: the
// render loop and each output's state, rate, restarts and last error; a snapshot and the MJPEG stream to
// look at here, and the addresses other players use.

import { api, currentSession, imageUrl } from "../api.js";
import { clock, h } from "../dom.js";

const MJPEG = "api/v1/stream/mjpeg";
const SNAPSHOT = "api/v1/pose/snapshot.jpg";
const STATES = { idle: "idle (nobody watching)", starting: "starting", running: "running", restarting: "restarting after a failure" };
const fixed = (value, unit) => (value === null || value === undefined ? "–" : `${value.toFixed(1)} ${unit}`);

/** ``path`` as an address another program can open: absolute, and with the token <img> cannot send. */
function streamUrl(path) {
  const url = new URL(path, document.baseURI);
  const token = currentSession()?.token;
  if (token) url.searchParams.set("access_token", token);
  return url.href;
}

export class VideoSection {
  constructor() {
    this.status = h("div", { id: "video-status", role: "status" }, h("p", { class: "muted" }, "Reading…"));
    this.viewer = h("div", { id: "video-viewer" });
    this.watchButton = h("button", { type: "button", id: "video-watch", class: "secondary", "aria-pressed": "false", onclick: () => this.toggleWatching() }, "Watch the MJPEG stream");
    this.controls = h("div", { class: "toolbar", id: "video-controls", hidden: true },
      this.watchButton,
      h("button", { type: "button", id: "video-snapshot", class: "secondary", onclick: () => this.snapshot() }, "Take a snapshot"));
    // Inside Home Assistant this page's address is its ingress, which other players cannot use.
    const where = (path) => (currentSession()?.token ? new URL(path, document.baseURI).href : `/${path}`);
    this.addresses = h("p", { class: "muted", id: "video-addresses", hidden: true },
      currentSession()?.token ? "Other players: " : "Other players, on the appliance's own address (not Home Assistant's): ",
      "MJPEG at ", h("code", {}, where(MJPEG)), " (a token with stream:subscribe), a still at ", h("code", {}, where(SNAPSHOT)),
      " (pose:read), each with ", h("code", {}, "?access_token=<an API token>"), ".");
    this.element = h("div", { class: "card", id: "video-card" },
      h("h3", {}, "Video"),
      h("p", { class: "muted" }, "The overlay video draws the skeletons the appliance estimates in a virtual camera view (simulated rooms say so in the picture). Outputs start when someone watches."),
      this.status, this.controls, this.addresses, this.viewer);
  }

  hide() {
    this.stopWatching();
  }

  /** ``sinks``: the sink runner's entries of /api/v1/system/performance by name. */
  async update(sinks) {
    const on = sinks.has("video");
    this.controls.hidden = !on;
    this.addresses.hidden = !on;
    if (!on) {
      this.stopWatching();
      this.status.replaceChildren(h("p", { id: "video-off" },
        h("strong", {}, "The video is off: "), "set ", h("code", {}, "video.enabled: true"), " in appliance.yaml and restart."));
      return;
    }
    try {
      this.render(await api("api/v1/stream/status"));
    } catch (err) {
      this.status.replaceChildren(h("p", { class: "error" }, `The video status could not be read: ${err.message}`));
    }
  }

  render(video) {
    const render = video.render;
    this.status.replaceChildren(
      h("p", {}, `${video.width}×${video.height} at ${video.fps} frames/s. Rendering: `,
        render.active ? h("span", { class: "ok" }, `on, ${render.fps.toFixed(1)} frames/s`) : h("span", { class: "muted" }, "paused (nothing needs it)"),
        `; ${render.frames} frames so far, ${render.missed_ticks} frame times missed`,
        render.render_ms === null ? "." : `, ${render.render_ms.toFixed(1)} ms a frame.`),
      h("div", { class: "table-wrap" }, h("table", { id: "video-outputs" },
        h("thead", {}, h("tr", {}, ...["Output", "State", "Rate", "Restarts", "Viewers", "Last error"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, ...video.outputs.map((o) => h("tr", { dataset: { output: o.id } },
          h("td", {}, o.id, h("br"), h("code", { class: "muted" }, o.target)),
          h("td", { class: o.state === "restarting" ? "bad" : o.state === "running" ? "ok" : "" }, STATES[o.state] ?? o.state),
          h("td", {}, fixed(o.fps, "frames/s"), o.bitrate_kbps === null ? "" : [h("br"), fixed(o.bitrate_kbps, "kbit/s")]),
          h("td", {}, String(o.restarts)),
          h("td", {}, o.viewers === null ? "–" : String(o.viewers)),
          h("td", {}, o.last_error ? `${o.last_error} (${clock(o.last_error_at)})` : "none")))))));
  }

  toggleWatching() {
    if (this.viewer.querySelector("#video-mjpeg")) {
      this.stopWatching();
      return;
    }
    this.viewer.replaceChildren(h("img", { id: "video-mjpeg", class: "video", src: streamUrl(MJPEG), alt: "The overlay video, live (MJPEG)" }));
    this.watchButton.textContent = "Stop watching";
    this.watchButton.setAttribute("aria-pressed", "true");
  }

  stopWatching() {
    // An <img> keeps its MJPEG connection (and the appliance keeps encoding for it) until its source goes.
    const image = this.viewer.querySelector("#video-mjpeg");
    if (image) image.removeAttribute("src");
    this.viewer.replaceChildren();
    this.watchButton.textContent = "Watch the MJPEG stream";
    this.watchButton.setAttribute("aria-pressed", "false");
  }

  async snapshot() {
    this.stopWatching();
    try {
      const url = await imageUrl(SNAPSHOT);
      this.viewer.replaceChildren(
        h("img", { id: "video-still", class: "video", src: url, alt: `The overlay video at ${clock(Date.now() / 1000)}` }),
        h("p", {}, h("a", { href: url, download: "invispose-snapshot.jpg" }, "Save the snapshot")));
    } catch (err) {
      this.viewer.replaceChildren(h("p", { class: "error" }, `No snapshot: ${err.message}`));
    }
  }
}
