// An instance's live events (GET /api/instances/{id}/events, Server-Sent Events). The
// browser's EventSource reconnects by itself and resumes after the last event id it saw.
import { token } from "./api.js";

/**
 * Call `handlers.instance(body)`, `handlers.history(event)`, `handlers.progress(body)` as
 * the stream delivers them, and `handlers.status("live" | "reconnecting" | "ended")`;
 * returns the function that stops watching.
 */
export function watch(instanceId, handlers) {
  const url = new URL(`/api/instances/${encodeURIComponent(instanceId)}/events`, location.origin);
  const current = token();
  if (current) url.searchParams.set("access_token", current);
  const source = new EventSource(url);
  const decode = (handler) => (message) => handler && handler(JSON.parse(message.data));
  source.addEventListener("open", () => handlers.status?.("live"));
  source.addEventListener("error", () => {
    handlers.status?.(source.readyState === EventSource.CLOSED ? "ended" : "reconnecting");
  });
  source.addEventListener("instance", decode(handlers.instance));
  source.addEventListener("history", decode(handlers.history));
  source.addEventListener("progress", decode(handlers.progress));
  source.addEventListener("end", () => {
    source.close();
    handlers.status?.("ended");
  });
  return () => source.close();
}
