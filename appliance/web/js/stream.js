// The live stream (/ws/v1/stream): one WebSocket for the whole UI. Its URL comes from the page's own
// location, so it follows any path prefix and http/https. The token goes in the first message, not the
// URL (URLs end up in proxy logs); inside Home Assistant (ingress) there is none: the appliance knows the
// user and says so in its first message. Reconnects with backoff; a refused token (close 4001/4003) ends
// the session instead.

import { endSession } from "./api.js";

const TOPICS = ["pose", "zone/+", "status", "controls", "config/zones", "event/#", "alert/#"];
const AUTH_REFUSED = new Set([4001, 4003]);
const MAX_BACKOFF_MS = 10_000;

export class LiveStream extends EventTarget {
  constructor() {
    super();
    this.socket = null;
    this.token = null;
    this.wanted = false;
    this.backoffMs = 500;
    this.retryTimer = null;
    this.state = "closed";
  }

  static url() {
    const url = new URL("ws/v1/stream", document.baseURI);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    return url.href;
  }

  open(token) {
    this.close();
    this.token = token;
    this.wanted = true;
    this.connect();
  }

  close() {
    this.token = null;
    this.wanted = false;
    clearTimeout(this.retryTimer);
    if (this.socket) {
      this.socket.onclose = null;
      this.socket.close(1000, "logged out");
      this.socket = null;
    }
    this.setState("closed");
  }

  connect() {
    this.setState("connecting");
    const socket = new WebSocket(LiveStream.url());
    this.socket = socket;
    socket.onopen = () => { if (this.token) socket.send(JSON.stringify({ type: "auth", token: this.token })); };
    socket.onmessage = (message) => this.receive(socket, JSON.parse(message.data));
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      if (AUTH_REFUSED.has(event.code)) {
        this.setState("closed");
        endSession(`the live stream refused the session (${event.reason || event.code}); log in again`);
        return;
      }
      this.setState("reconnecting");
      this.retryTimer = setTimeout(() => this.wanted && this.connect(), this.backoffMs);
      this.backoffMs = Math.min(MAX_BACKOFF_MS, this.backoffMs * 2);
    };
  }

  receive(socket, message) {
    if (message.type === "authenticated" || (message.type === "connection" && message.authenticated)) {
      for (const topic of TOPICS) socket.send(JSON.stringify({ type: "subscribe", topic }));
      this.backoffMs = 500;
      this.setState("live");
    } else if (message.type === "lagged") {
      this.dispatchEvent(new CustomEvent("lagged", { detail: message }));
    } else if (message.type === "error") {
      console.warn("stream:", message.code, message.message);
    } else if (message.topic !== undefined) {
      this.dispatchEvent(new CustomEvent("message", { detail: message }));
    }
  }

  setState(state) {
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: state }));
  }
}
