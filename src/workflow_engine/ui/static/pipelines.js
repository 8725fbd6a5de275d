// The shipped and saved definitions, each with its diagram, and one definition's page.
import { h } from "preact";
import { useEffect, useState } from "preact/hooks";
import htm from "htm";

import { CannotDo, useCan } from "./access.js";
import { all, get, post } from "./api.js";
import { stepsOf } from "./builder.js";
import { Diagram } from "./diagram.js";
import { StartForm } from "./run-form.js";
import { PageHeading, StatusBadge, formatTime } from "./widgets.js";

const html = htm.bind(h);

/** `load()`'s value once it resolves, with its error if it fails. */
export function useLoaded(load, deps) {
  const [state, setState] = useState({ value: null, error: null, loading: true });
  useEffect(() => {
    let live = true;
    setState((previous) => ({ ...previous, loading: true }));
    load().then((value) => live && setState({ value, error: null, loading: false }))
      .catch((error) => live && setState({ value: null, error, loading: false }));
    return () => { live = false; };
  }, deps);
  return state;
}

function isPipeline(definition) {
  return definition.states.some((state) => state.block);
}

export function PipelinesPage() {
  const { value, error } = useLoaded(async () => {
    const listed = await all("/api/definitions?limit=100");
    return Promise.all(listed.map((d) => get(`/api/definitions/${encodeURIComponent(d.id)}`)));
  }, []);
  if (error) return html`<p class="error" role="alert">${error.message}</p>`;
  if (!value) return html`<p aria-busy="true">Loading definitions…</p>`;
  const pipelines = value.filter(isPipeline);
  const machines = value.filter((d) => !isPipeline(d));
  const section = (title, items) => html`
    <section aria-labelledby=${`h-${title}`}>
      <h2 id=${`h-${title}`}>${title}</h2>
      ${items.length === 0 && html`<p>None yet.</p>`}
      <ul class="cards">
        ${items.map((d) => html`
          <li class="card" key=${d.id}>
            <div>
              <h3><a href=${`#/definitions/${encodeURIComponent(d.id)}`}>${d.name}</a></h3>
              <p class="meta">${d.id} · version ${d.version}</p>
              <p>${d.description}</p>
            </div>
            <${Diagram} definition=${d} />
          </li>`)}
      </ul>
    </section>`;
  return html`
    <${PageHeading}>Pipelines<//>
    ${section("Data pipelines", pipelines)}
    ${section("State machines", machines)}`;
}

/** A definition's triggers (GET /api/definitions/{id}/triggers): each webhook's URL, each
 * schedule's cron and next tick, when each last started an instance; an admin can make a
 * webhook's token anew, shown once. */
function Triggers({ id }) {
  const canSave = useCan("admin");
  const [tokens, setTokens] = useState({});
  const [failure, setFailure] = useState(null);
  const { value, error } = useLoaded(
    () => get(`/api/definitions/${encodeURIComponent(id)}/triggers`), [id]);
  if (error) return html`<p class="error" role="alert">${error.message}</p>`;
  if (!value || value.items.length === 0) return null;
  const rotate = async (trigger) => {
    setFailure(null);
    try {
      const made = await post(`/api/definitions/${encodeURIComponent(id)}/triggers/`
        + `${encodeURIComponent(trigger)}/token`);
      setTokens((shown) => ({ ...shown, [trigger]: made.token }));
    } catch (problem) {
      setFailure(problem.message);
    }
  };
  return html`
    <section aria-labelledby="triggers-title" data-testid="triggers">
      <h2 id="triggers-title">Triggers</h2>
      ${failure && html`<p class="error" role="alert">${failure}</p>`}
      <ul>
        ${value.items.map((t) => html`
          <li key=${t.id}>
            <strong>${t.id}</strong> (${t.type}${t.enabled ? "" : ", disabled"}):
            ${t.type === "webhook"
              ? html` POST <code>${t.hook_url}</code> with the trigger's token`
              : html` <code>${t.cron}</code> (${t.timezone}), next ${formatTime(t.next_fire_at)}`}
            ${t.last_fired_at && html`; last started ${formatTime(t.last_fired_at)}`}
            ${t.type === "webhook" && canSave && html`
              <button type="button" onClick=${() => rotate(t.id)}>New token</button>`}
            ${tokens[t.id] && html`<p>New token (shown once): <code
              data-testid="hook-token">${tokens[t.id]}</code></p>`}
          </li>`)}
      </ul>
    </section>`;
}

export function DefinitionPage({ id }) {
  const canStart = useCan("run");
  const canSave = useCan("admin");
  const { value, error } = useLoaded(async () => {
    const definition = await get(`/api/definitions/${encodeURIComponent(id)}`);
    const instances = await get(
      `/api/instances?definition_id=${encodeURIComponent(id)}&limit=50`);
    return { definition, instances: instances.items };
  }, [id]);
  if (error) return html`<p class="error" role="alert">${error.message}</p>`;
  if (!value) return html`<p aria-busy="true">Loading…</p>`;
  const { definition, instances } = value;
  return html`
    <p class="crumbs"><a href="#/">Pipelines</a>${" › "}${definition.name}</p>
    <${PageHeading}>${definition.name}<//>
    <p class="meta">${definition.id} · version ${definition.version}</p>
    <p>${definition.description}</p>
    <${Diagram} definition=${definition} />
    ${canSave && stepsOf(definition) && html`<p><a
      href=${`#/builder/${encodeURIComponent(definition.id)}`}>Edit in the builder</a>
      (saving makes version ${definition.version + 1})</p>`}
    ${(definition.triggers || []).length > 0 && html`<${Triggers} id=${definition.id} />`}
    ${canStart ? html`<${StartForm} definition=${definition} />`
      : html`<${CannotDo} scope="run" what="start an instance" />`}
    <section aria-labelledby="instances-title">
      <h2 id="instances-title">Instances</h2>
      ${instances.length === 0 ? html`<p>No instance yet.</p>` : html`
        <table class="list">
          <thead><tr><th scope="col">Instance</th><th scope="col">State</th>
            <th scope="col">Status</th><th scope="col">Updated</th></tr></thead>
          <tbody>
            ${instances.map((i) => html`
              <tr key=${i.id}>
                <td><a href=${`#/instances/${encodeURIComponent(i.id)}`}>${i.id}</a></td>
                <td>${i.current_state}</td><td><${StatusBadge} status=${i.status} /></td>
                <td>${formatTime(i.updated_at)}</td>
              </tr>`)}
          </tbody>
        </table>`}
    </section>`;
}
