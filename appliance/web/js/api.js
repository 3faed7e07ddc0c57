// The appliance's REST API, called with paths relative to the page ("api/v1/..."), so the UI works under
// any path prefix (Home Assistant ingress, a reverse proxy). The login token lives in this module's memory
// only: never in localStorage or sessionStorage, where any script on the page could read it later; a
// reload asks for the password again.

let session = null; // {token, username, scopes}; token is null when Home Assistant signed the user in
const sessionEndListeners = [];

export class ApiError extends Error {
  constructor(status, body) {
    super(errorText(body, status));
    this.status = status;
    this.body = body;
  }
}

export function errorText(body, status) {
  const error = body?.error;
  if (!error) return `HTTP ${status}`;
  const details = Array.isArray(error.details) ? error.details : [];
  const fields = details.filter((d) => d.field).map((d) => `${d.field}: ${d.message}`);
  return fields.length ? `${error.message} (${fields.join("; ")})` : error.message;
}

export function startSession(login) {
  session = { token: login.access_token, username: login.username, scopes: new Set(login.scopes) };
}

export function endSession(reason) {
  const had = session !== null;
  session = null;
  if (had) for (const listener of sessionEndListeners) listener(reason);
}

export const onSessionEnd = (listener) => sessionEndListeners.push(listener);
export const currentSession = () => session;
export const may = (scope) => session !== null && (session.scopes.has("admin:all") || session.scopes.has(scope));

/** fetch() with the session's token; a 401 ends the session (the login form comes back). */
export async function request(path, options = {}) {
  const headers = { ...(options.headers ?? {}) };
  if (session?.token) headers.Authorization = `Bearer ${session.token}`;
  if (options.json !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    cache: "no-store",
    method: options.method ?? (options.json !== undefined ? "POST" : "GET"),
    headers,
    body: options.json !== undefined ? JSON.stringify(options.json) : undefined,
  });
  if (response.status === 401 && session) endSession("your session ended (expired, or the account was removed); log in again");
  return response;
}

/** The JSON body of a successful call; an ApiError naming the problem otherwise. */
export async function api(path, options = {}) {
  const response = await request(path, options);
  if (response.status === 204) return null;
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

/** An image (the heatmap PNG, the video snapshot) as an object URL: <img> cannot send the Authorization
 * header itself. */
export async function imageUrl(path) {
  const response = await request(path, { headers: { Accept: "image/*" } });
  if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
  return URL.createObjectURL(await response.blob());
}
