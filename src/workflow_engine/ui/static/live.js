// An instance's live events (GET /api/instances/{id}/events, Server-Sent Events). The
// browser's EventSource reconnects by itself after a dropped stream and resumes after the
// last event id it saw. A stream refused outright closes it instead: a 503 when the
// server has as many streams as it serves, or a 204 when the instance ended and nothing is
// left to send. The page then reads the instance: ended, it shows it as it is; else it
// opens a stream again after a pause, resuming with ?after= from the last id it received.
import { get, token } from "./api.js";

const REOPEN_SECONDS = 5;

/**
 * Call `handlers.instance(body)`, `handlers.history(event)`, `handlers.progress(body)` as
 * the stream delivers them, and `handlers.status("live" | "reconnecting" | "ended")`;
 * returns the function that stops watching.
 */
export function watch(instanceId, handlers) {
  let source = null;
  let lastId = null;
  let stopped = false;
  let reopen = null;

  const open = () => {
    const url = new URL(`/api/instances/${encodeURIComponent(instanceId)}/events`,
                        location.origin);
    const current = token();
    if (current) url.searchParams.set("access_token", current);
    if (lastId) url.searchParams.set("after", lastId);
    source = new EventSource(url);
    const decode = (handler) => (message) => {
      if (message.lastEventId) lastId = message.lastEventId;
      if (handler) handler(JSON.parse(message.data));
    };
    source.addEventListener("open", () => handlers.status?.("live"));
    source.addEventListener("error", () => {
      if (stopped) return;
      if (source.readyState === EventSource.CLOSED) {
        handlers.status?.("reconnecting");
        get(`/api/instances/${encodeURIComponent(instanceId)}`).then((found) => {
          if (stopped) return;
          if (found.is_final) {
            handlers.instance?.(found);
            handlers.status?.("ended");
          } else {
            reopen = setTimeout(open, REOPEN_SECONDS * 1000);
          }
        }).catch(() => { if (!stopped) reopen = setTimeout(open, REOPEN_SECONDS * 1000); });
      } else {
        handlers.status?.("reconnecting");
      }
    });
    source.addEventListener("instance", decode(handlers.instance));
    source.addEventListener("history", decode(handlers.history));
    source.addEventListener("progress", decode(handlers.progress));
    source.addEventListener("end", () => {
      stopped = true;
      source.close();
      handlers.status?.("ended");
    });
  };

  open();
  return () => {
    stopped = true;
    clearTimeout(reopen);
    source?.close();
  };
}
