// The API as the page uses it: JSON in and out, the session's token, problems as errors.

const TOKEN_KEY = "workflow-engine.token";

/** An answer of the API that is not a success: its problem document. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.code = problem.code || "http_error";
    this.problem = problem;
  }
}

/** The token of this browser tab's session (never stored beyond it). */
export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

const listeners = new Set();

/** Called with the error whenever the API asks for a (better) token. */
export function onUnauthenticated(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** Call the API; the decoded JSON body, or an ApiError. `bearer` replaces the session's
 * token for this call (to try one before keeping it); a 401 then tells no listener. */
export async function request(method, path, { body, headers = {}, bearer } = {}) {
  const sent = { ...headers };
  const current = bearer === undefined ? token() : bearer;
  if (current) sent.Authorization = `Bearer ${current}`;
  if (body !== undefined && !(body instanceof FormData)) sent["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers: sent,
    body: body === undefined || body instanceof FormData ? body : JSON.stringify(body),
  });
  const type = response.headers.get("Content-Type") || "";
  const decoded = type.includes("json") ? await response.json() : await response.text();
  if (!response.ok) {
    const problem = typeof decoded === "object" ? decoded : { detail: String(decoded) };
    const error = new ApiError(response.status, problem);
    if (response.status === 401 && bearer === undefined) {
      listeners.forEach((listener) => listener(error));
    }
    throw error;
  }
  return decoded;
}

export const get = (path) => request("GET", path);
export const post = (path, body, headers) => request("POST", path, { body, headers });

/** What a token may do: the session's, or `candidate` (the server refuses a wrong one
 * with a 401 ApiError). */
export const whoami = (candidate) => request("GET", "/api/whoami", { bearer: candidate });

/** Every item of a paged list (the API's `next_cursor`). */
export async function all(path) {
  const items = [];
  let next = path;
  while (next) {
    const page = await get(next);
    items.push(...page.items);
    next = page.next_cursor ? withCursor(path, page.next_cursor) : null;
  }
  return items;
}

function withCursor(path, cursor) {
  const url = new URL(path, location.origin);
  url.searchParams.set("cursor", cursor);
  return url.pathname + url.search;
}
