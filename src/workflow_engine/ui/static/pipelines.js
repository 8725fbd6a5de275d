// The shipped and saved definitions, each with its diagram, and one definition's page.
import { h } from "preact";
import { useEffect, useState } from "preact/hooks";
import htm from "htm";

import { CannotDo, useCan } from "./access.js";
import { all, get } from "./api.js";
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
    ${isPipeline(definition) && canSave && html`<p><a
      href=${`#/builder/${encodeURIComponent(definition.id)}`}>Edit in the builder</a>
      (saving makes version ${definition.version + 1})</p>`}
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
