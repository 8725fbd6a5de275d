// One instance: its diagram with the current state lit, its actions as buttons, its
// progress and its history, kept live by the instance's event stream; and the list of runs.
import { h } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import htm from "htm";

import { CannotDo, useCan } from "./access.js";
import { all, get, post } from "./api.js";
import { Diagram } from "./diagram.js";
import { watch } from "./live.js";
import { useLoaded } from "./pipelines.js";
import { TableView } from "./table.js";
import { PageHeading, Progress, StatusBadge, formatTime } from "./widgets.js";

const html = htm.bind(h);

const EVENT_TITLES = {
  instance_started: "Started", action_fired: "Action fired",
  block_started: "Block started", block_succeeded: "Block succeeded",
  block_failed: "Block failed", block_cancelled: "Block cancelled",
};

function eventTitle(event, actions) {
  const base = EVENT_TITLES[event.type] || event.type.replaceAll("_", " ");
  const action = event.action_id && actions.get(event.action_id);
  return action ? `${base}: ${action.name}` : base;
}

function History({ events, definition }) {
  const actions = new Map(definition.actions.map((a) => [a.id, a]));
  const states = new Map(definition.states.map((s) => [s.id, s.name]));
  return html`
    <section aria-labelledby="history-title">
      <h2 id="history-title">History</h2>
      <ol class="timeline" data-testid="history">
        ${events.map((event) => html`
          <li key=${event.seq} class=${`event is-${event.type}`}>
            <span class="seq">#${event.seq}</span>
            <strong>${eventTitle(event, actions)}</strong>
            <span>${event.from_state && event.from_state !== event.to_state
              ? `${states.get(event.from_state) || event.from_state} → ` : ""}${
              states.get(event.to_state) || event.to_state}</span>
            ${event.data?.block && html`<span class="meta">${event.data.block}${
              event.data.rows_out != null ? ` · ${event.data.rows_out} rows` : ""}</span>`}
            ${event.data?.error && html`<span class="error-text">${
              event.data.error.message || event.data.error.code}</span>`}
            ${event.actor && html`<span class="meta">by ${event.actor}</span>`}
            <time datetime=${event.at}>${formatTime(event.at)}</time>
          </li>`)}
      </ol>
    </section>`;
}

/** Where the focus goes after a fire, cancel or retry: the pressed button was disabled
 * while the request ran and may be gone now, so the browser has dropped the focus to the
 * page. The button `preferred` selects if there is one (the same action offered again,
 * Retry after Cancel, Cancel after Retry), else the first button, else the current state. */
function refocus(section, preferred) {
  const active = document.activeElement;
  if (active && active !== document.body && active.isConnected
      && !section.contains(active)) return;  // the user has moved on
  const buttons = [...section.querySelectorAll("button:not([disabled])")];
  const target = buttons.find((b) => b.matches(preferred))
    || buttons[0] || document.querySelector("[data-testid=current-state-summary]");
  target?.focus();
}

/** What can be done now: the actions as buttons, and cancel or retry; for a token that
 * cannot run, the actions available as text and no button. */
function Actions({ instance, progress, onFired }) {
  const canRun = useCan("run");
  const [failure, setFailure] = useState(null);
  const [busy, setBusy] = useState(null);
  const section = useRef(null);
  const pressed = useRef(undefined);
  useEffect(() => {
    if (busy !== null || pressed.current === undefined || !section.current) return;
    refocus(section.current, pressed.current);
    pressed.current = undefined;
  }, [busy, instance.version]);
  const fire = async (action) => {
    pressed.current = `[data-action="${CSS.escape(action.id)}"]`;
    setBusy(action.id);
    setFailure(null);
    try {
      const fired = await post(
        `/api/instances/${encodeURIComponent(instance.id)}/actions/${encodeURIComponent(action.id)}`,
        undefined, { "Idempotency-Key": crypto.randomUUID() });
      onFired(fired);
    } catch (error) {
      setFailure({ action: action.name, message: error.message, code: error.code });
    } finally {
      setBusy(null);
    }
  };
  // No Idempotency-Key here: the API takes one for fires only. The page sends each
  // cancel or retry once, its buttons disabled until the answer comes.
  const control = async (what, branch) => {
    pressed.current = `[data-control=${what === "cancel" ? "retry" : "cancel"}]`;
    setBusy(`/${what}${branch ? `/${branch}` : ""}`);  // not an action id: those have no "/"
    setFailure(null);
    const query = branch ? `?branch=${encodeURIComponent(branch)}` : "";
    try {
      onFired(await post(`/api/instances/${encodeURIComponent(instance.id)}/${what}${query}`));
    } catch (error) {
      setFailure({ action: what, message: error.message, code: error.code });
    } finally {
      setBusy(null);
    }
  };
  const busyOf = (what) => (busy === what ? "true" : null);
  return html`
    <section aria-labelledby="actions-title" ref=${section}>
      <h2 id="actions-title">Actions</h2>
      ${instance.available_actions.length === 0
        ? html`<p>No action is available in this state.</p>`
        : !canRun ? html`<p data-testid="available-actions">Available in this state: ${
          instance.available_actions.map((action) => action.name).join(", ")}.</p>`
        : html`<div class="buttons">
            ${instance.available_actions.map((action) => html`
              <button type="button" key=${action.id} data-action=${action.id}
                      disabled=${busy !== null} aria-busy=${busyOf(action.id)}
                      onClick=${() => fire(action)}
                      title=${action.description || null}>${action.name}</button>`)}
          </div>`}
      <${CannotDo} scope="run" what="fire actions, cancel or retry a block" />
      ${canRun && instance.status === "running" && html`
        <button type="button" class="secondary" onClick=${() => control("cancel")}
                data-control="cancel" disabled=${busy !== null} aria-busy=${busyOf("/cancel")}>
          Cancel the running block</button>`}
      ${canRun && instance.status === "running" && (progress?.branches || [])
        .filter((branch) => branch.status === "running").map((branch) => html`
        <button type="button" class="secondary" key=${branch.id}
                onClick=${() => control("cancel", branch.id)} data-control="cancel-branch"
                data-branch=${branch.id} disabled=${busy !== null}
                aria-busy=${busyOf(`/cancel/${branch.id}`)}>
          Cancel branch ${branch.name}</button>`)}
      ${canRun && (instance.status === "failed" || instance.status === "cancelled") && html`
        <button type="button" class="secondary" onClick=${() => control("retry")}
                data-control="retry" disabled=${busy !== null} aria-busy=${busyOf("/retry")}>
          Retry the ${instance.status} block</button>`}
      <div role="alert" class="alert-slot">
        ${failure && html`<p class="error" data-code=${failure.code}>
          <strong>${failure.action}</strong> was not done: ${failure.message}</p>`}
      </div>
    </section>`;
}

const REFRESH_MS = 1000;

/** A value that follows `value` at most once per `ms` (and settles on its last one). */
function useThrottled(value, ms) {
  const [shown, setShown] = useState(value);
  const last = useRef(0);
  useEffect(() => {
    const wait = Math.max(0, last.current + ms - Date.now());
    const timer = setTimeout(() => { last.current = Date.now(); setShown(value); }, wait);
    return () => clearTimeout(timer);
  }, [value]);
  return shown;
}

/** The table after each step that made one, to choose from (the latest at first); while
 * an enrichment runs, its table so far, filling in as answers arrive. */
function Tables({ instance, events, definition, progress }) {
  const states = new Map(definition.states.map((s) => [s.id, s.name]));
  const steps = events.filter((e) => e.type === "block_succeeded")
    .map((e) => ({ seq: e.seq, label: `${e.data?.block || "step"} (${states.get(e.to_state)
      || e.to_state})` }));
  const filling = instance.status === "running" && progress && progress.rows_sent != null;
  if (filling) {
    steps.push({ seq: instance.version, running: true,
      label: `${progress.block} (${states.get(instance.current_state)
        || instance.current_state}), answers so far` });
  }
  const [chosen, setChosen] = useState(null);
  const refresh = useThrottled(filling ? progress.rows_done + 1 : 0, REFRESH_MS);
  if (steps.length === 0) return null;
  const seq = chosen ?? steps[steps.length - 1].seq;
  const step = steps.find((s) => s.seq === seq) || steps[steps.length - 1];
  return html`
    <section aria-labelledby="tables-title">
      <h2 id="tables-title">Tables</h2>
      <div class="steps" role="group" aria-label="The table after step">
        ${steps.map((s) => html`
          <button type="button" key=${s.seq} aria-pressed=${s.seq === step.seq ? "true" : "false"}
                  onClick=${() => setChosen(s.seq)}>#${s.seq} ${s.label}</button>`)}
      </div>
      <${TableView} instanceId=${instance.id} seq=${step.seq} running=${!!step.running}
                    refresh=${step.running ? refresh : 0}
                    caption=${step.running ? `Running #${step.seq} ${step.label}`
                      : `After #${step.seq} ${step.label}`} />
    </section>`;
}

export function InstancePage({ id }) {
  const [instance, setInstance] = useState(null);
  const [events, setEvents] = useState([]);
  const [progress, setProgress] = useState(null);
  const [failure, setFailure] = useState(null);
  const [live, setLive] = useState("connecting");
  const definitionCache = useRef(new Map());
  const onFired = useRef(() => {});
  const [definition, setDefinition] = useState(null);

  useEffect(() => {
    let stopped = false;
    const path = `/api/instances/${encodeURIComponent(id)}`;
    // The fetch, the stream and a fire's answer may arrive in any order: a snapshot
    // replaces the one shown only if it is as new, and history is merged by seq.
    const shownVersion = { current: 0 };
    const newer = (found) => {
      if (stopped || found.version < shownVersion.current) return;
      shownVersion.current = found.version;
      setInstance(found);
      setProgress(found.status === "running" ? found.progress : null);
    };
    const merge = (arrived) => setEvents((known) => {
      const bySeq = new Map(known.map((e) => [e.seq, e]));
      for (const event of arrived) bySeq.set(event.seq, event);
      return [...bySeq.values()].sort((a, b) => a.seq - b.seq);
    });
    Promise.all([get(path), all(`${path}/history?limit=200`)]).then(([found, history]) => {
      if (stopped) return;
      newer(found);
      merge(history);
    }).catch((error) => !stopped && setFailure(error));
    const stop = watch(id, {
      instance: newer,
      history: (event) => merge([event]),
      progress: (found) => !stopped && setProgress(found),
      status: setLive,
    });
    onFired.current = newer;
    return () => { stopped = true; stop(); };
  }, [id]);

  useEffect(() => {
    if (!instance) return;
    const key = `${instance.definition_id}@${instance.definition_version}`;
    const cached = definitionCache.current.get(key);
    if (cached) { setDefinition(cached); return; }
    get(`/api/definitions/${encodeURIComponent(instance.definition_id)}?version=${
      instance.definition_version}`).then((found) => {
      definitionCache.current.set(key, found);
      setDefinition(found);
    }).catch((error) => setFailure(error));
  }, [instance?.definition_id, instance?.definition_version]);

  if (failure) return html`<p class="error" role="alert">${failure.message}</p>`;
  if (!instance || !definition) return html`<p aria-busy="true">Loading…</p>`;
  const visited = [...new Set(events.map((e) => e.to_state))];
  const stateName = definition.states.find((s) => s.id === instance.current_state)?.name;
  return html`
    <p class="crumbs"><a href="#/runs">Runs</a>${" › "}<a
      href=${`#/definitions/${encodeURIComponent(definition.id)}`}>${definition.name}</a>${
      " › "}${instance.id}</p>
    <${PageHeading}>Instance ${instance.id}<//>
    <p class="summary" role="status" tabindex="-1" data-testid="current-state-summary">
      <span>In <strong data-testid="current-state">${stateName || instance.current_state}</strong></span>
      <${StatusBadge} status=${instance.status} />
      <span class="meta">version ${instance.version} · live: ${live}</span>
    </p>
    <${Diagram} definition=${definition} current=${instance.current_state}
                visited=${visited} status=${instance.status} />
    ${instance.status === "running" && html`<${Progress} progress=${progress} />`}
    ${instance.error && html`<p class="error" role="status">
      ${instance.error.code}: ${instance.error.message}</p>`}
    <${Actions} instance=${instance} progress=${progress}
                onFired=${(found) => onFired.current(found)} />
    <${Tables} instance=${instance} events=${events} definition=${definition}
               progress=${progress} />
    <${History} events=${events} definition=${definition} />`;
}

export function RunsPage() {
  const { value, error } = useLoaded(() => get("/api/instances?limit=100"), []);
  if (error) return html`<p class="error" role="alert">${error.message}</p>`;
  if (!value) return html`<p aria-busy="true">Loading runs…</p>`;
  return html`
    <${PageHeading}>Runs<//>
    ${value.items.length === 0 ? html`<p>No instance yet: start one from a
      <a href="#/">pipeline</a>.</p>` : html`
      <table class="list">
        <thead><tr><th scope="col">Instance</th><th scope="col">Definition</th>
          <th scope="col">State</th><th scope="col">Status</th><th scope="col">Updated</th></tr>
        </thead>
        <tbody>
          ${value.items.map((i) => html`
            <tr key=${i.id}>
              <td><a href=${`#/instances/${encodeURIComponent(i.id)}`}>${i.id}</a></td>
              <td>${i.definition_id}</td><td>${i.current_state}</td>
              <td><${StatusBadge} status=${i.status} /></td>
              <td>${formatTime(i.updated_at)}</td>
            </tr>`)}
        </tbody>
      </table>`}`;
}
