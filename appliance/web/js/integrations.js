// Settings sections for integrations that are built separately (webhooks, MQTT). Each section appears
// when its API is in the appliance's OpenAPI document, so an appliance without it shows nothing.
//
// Hook for the engineers of those integrations: give an entry a `module` (a file beside this one that
// exports `render(container, operations)`) and its section uses it. Without one, the section lists the
// API's operations and shows what each parameterless GET answers now, read-only.

import { api } from "./api.js";
import { h } from "./dom.js";

export const INTEGRATIONS = [
  { id: "webhooks", title: "Webhooks", matches: (path) => path.startsWith("/api/v1/webhooks"), module: null },
  { id: "mqtt", title: "MQTT", matches: (path) => path.includes("/mqtt"), module: null },
];

/** The operations of each integration present in the OpenAPI document: id -> [{method, path, summary}]. */
export function presentIntegrations(openapi) {
  const found = new Map();
  for (const [path, item] of Object.entries(openapi.paths ?? {})) {
    for (const entry of INTEGRATIONS) {
      if (!entry.matches(path)) continue;
      const operations = found.get(entry.id) ?? [];
      for (const [method, operation] of Object.entries(item)) {
        if (["get", "post", "put", "patch", "delete"].includes(method)) {
          operations.push({ method: method.toUpperCase(), path, summary: operation.summary ?? "" });
        }
      }
      found.set(entry.id, operations);
    }
  }
  return found;
}

export async function renderIntegration(entry, operations, container) {
  if (entry.module) {
    const module = await import(entry.module);
    module.render(container, operations);
    return;
  }
  container.replaceChildren(
    h("ul", { class: "plain" }, ...operations.map((op) => h("li", {}, h("code", {}, `${op.method} ${op.path.replace(/^\//, "")}`), ` ${op.summary}`))),
  );
  for (const op of operations.filter((o) => o.method === "GET" && !o.path.includes("{"))) {
    const output = h("pre", { class: "json" }, "…");
    container.append(h("h4", {}, op.summary || op.path), output);
    try {
      output.textContent = JSON.stringify(await api(op.path.replace(/^\//, "")), null, 2);
    } catch (err) {
      output.textContent = err.message;
    }
  }
}
