// The pipeline builder: blocks from GET /api/blocks dragged (or added with the keyboard)
// into a sequence, each block's parameters in a form made from its schema, the static
// check of the whole pipeline shown on the block that fails it, and the definition that
// saving posts (a new definition, or a new version of the one being edited).
import { h } from "preact";
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import htm from "htm";
import Sortable from "sortablejs";

import { CannotDo, useCan } from "./access.js";
import { get, post, request } from "./api.js";
import { Diagram } from "./diagram.js";
import { SchemaForm } from "./schema-form.js";
import { PageHeading } from "./widgets.js";

const html = htm.bind(h);

const TITLES = {
  read_csv: "Read CSV", filter: "Filter", compute: "Compute columns", dedupe: "Remove duplicates",
  select_columns: "Select columns", save_csv: "Save CSV", enrich_lead: "Enrich lead",
  enrich_company: "Enrich company", find_email: "Find email", find_phone: "Find phone",
  http_request: "HTTP request",
};
export const blockTitle = (type) => TITLES[type] || type.replaceAll("_", " ");

let keys = 0;
const newStep = (type, params = {}) => ({ key: `step-${(keys += 1)}`, type, params, name: "" });

/** The definition a sequence of steps stands for: Ready, then one state per step, run by
 * hand from Ready and then each into the next automatically; the last one is final. */
export function definitionOf(meta, steps) {
  const ready = { id: "ready", name: meta.ready?.name || "Ready", is_initial: true };
  if (meta.ready?.description) ready.description = meta.ready.description;
  const states = [ready];
  const actions = [];
  let previous = "ready";
  steps.forEach((step, index) => {
    const id = `step_${index + 1}_${step.type}`;
    const state = {
      id, name: step.name.trim() || `${index + 1}. ${blockTitle(step.type)}`,
      block: { type: step.type, params: step.params },
    };
    if (step.description) state.description = step.description;
    if (index === steps.length - 1) state.is_final = true;
    states.push(state);
    actions.push(index === 0
      ? { id: "run", name: "Run", from_states: ["ready"], to_state: id }
      : { id: `to_${id}`, name: blockTitle(step.type), trigger: "auto", from_states: [previous],
          to_state: id });
    previous = id;
  });
  return { id: meta.id.trim(), name: meta.name.trim() || meta.id.trim(),
           description: meta.description, states, actions };
}

/** The steps of a definition that is a straight pipeline the builder can write back
 * without losing anything, or null: a guard, a disabled state or action, an `on_error`,
 * a manual action after the first, a description on an action or a trigger would be
 * lost. */
export function stepsOf(definition) {
  const initial = definition.states.filter((s) => s.is_initial);
  if (initial.length !== 1 || initial[0].block) return null;
  if ((definition.triggers || []).length > 0) return null;
  const lost = definition.states.some((s) => s.enabled === false || s.on_error)
    || definition.actions.some((a, i) => a.enabled === false || a.description
      || a.condition
      || (a.from_states.includes(initial[0].id) ? a.trigger === "auto" : a.trigger !== "auto"));
  if (lost) return null;
  const byId = new Map(definition.states.map((s) => [s.id, s]));
  const steps = [];
  let at = initial[0].id;
  const seen = new Set([at]);
  for (;;) {
    const out = definition.actions.filter((a) => a.from_states.includes(at));
    if (out.length === 0) break;
    if (out.length > 1) return null;
    const next = byId.get(out[0].to_state);
    // A fork's branches are blocks inside a block: the builder's line cannot show them.
    if (!next || !next.block || next.block.type === "branches" || seen.has(next.id)) return null;
    seen.add(next.id);
    steps.push({ ...newStep(next.block.type, next.block.params || {}), name: next.name,
                 description: next.description || "" });
    at = next.id;
  }
  if (seen.size !== definition.states.length) return null;
  return { steps, ready: { name: initial[0].name, description: initial[0].description || "" } };
}

/** Problems of the check, by step index (states[0] is Ready), and those of the whole. */
function problemsByStep(problems) {
  const steps = new Map();
  const general = [];
  for (const problem of problems) {
    const found = /^states\[(\d+)\]/.exec(problem.path || "");
    if (found && Number(found[1]) > 0) {
      const index = Number(found[1]) - 1;
      steps.set(index, [...(steps.get(index) || []), problem]);
    } else {
      general.push(problem);
    }
  }
  return { steps, general };
}

function useSortable(ref, options, deps) {
  useEffect(() => {
    if (!ref.current) return undefined;
    const sortable = Sortable.create(ref.current, options());
    return () => sortable.destroy();
  }, deps);
}

function Palette({ blocks, onAdd }) {
  // A fork holds other blocks: the builder's single line of steps has no place for one.
  const offered = blocks.filter((block) => !block.composite);
  const list = useRef(null);
  useSortable(list, () => ({
    group: { name: "pipeline", pull: "clone", put: false }, sort: false,
    forceFallback: true, fallbackOnBody: true, handle: ".grip", draggable: "li",
  }), [blocks.length]);
  return html`
    <section class="palette" aria-labelledby="palette-title">
      <h2 id="palette-title">Blocks</h2>
      <p class="help">Drag a block into the pipeline, or add it with its button.</p>
      <ul ref=${list} data-testid="palette">
        ${offered.map((block) => html`
          <li key=${block.type} data-type=${block.type} class="palette-item">
            <span class="grip" aria-hidden="true">⠿</span>
            <span class="palette-name"><strong>${blockTitle(block.type)}</strong>
              <small>${block.description}</small></span>
            <button type="button" class="secondary small" onClick=${() => onAdd(block.type)}
                    aria-label=${`Add ${blockTitle(block.type)}`}>Add</button>
          </li>`)}
      </ul>
    </section>`;
}

function StepCard({ step, index, count, selected, problems, onSelect, onMove, onRemove }) {
  const title = `${index + 1}. ${step.name.trim() || blockTitle(step.type)}`;
  return html`
    <li class=${`step${selected ? " selected" : ""}${problems.length ? " has-problems" : ""}`}
        data-key=${step.key} data-type=${step.type} aria-current=${selected ? "step" : null}>
      <div class="step-head">
        <span class="grip" aria-hidden="true">⠿</span>
        <button type="button" class="step-title link" onClick=${onSelect}
                aria-label=${`Edit ${title}`}>${title}</button>
        <span class="meta">${step.type}</span>
        <span class="step-tools">
          <button type="button" class="secondary small" disabled=${index === 0} data-tool="up"
                  aria-label=${`Move ${title} up`} onClick=${() => onMove(-1)}>↑</button>
          <button type="button" class="secondary small" disabled=${index === count - 1}
                  data-tool="down" aria-label=${`Move ${title} down`} onClick=${() => onMove(1)}>↓</button>
          <button type="button" class="secondary small" aria-label=${`Remove ${title}`}
                  data-tool="remove" onClick=${onRemove}>Remove</button>
        </span>
      </div>
      ${problems.length > 0 && html`
        <ul class="problems" data-testid="step-problems">
          ${problems.map((p) => html`<li class="error-text">${p.message}</li>`)}
        </ul>`}
    </li>`;
}

export function BuilderPage({ id = null }) {
  const [blocks, setBlocks] = useState([]);
  const [files, setFiles] = useState([]);
  const [meta, setMeta] = useState({ id: "", name: "", description: "" });
  const [steps, setSteps] = useState([]);
  const [selected, setSelected] = useState(null);
  const [check, setCheck] = useState(null);
  const [failure, setFailure] = useState(null);
  const [notice, setNotice] = useState(null);
  const [saving, setSaving] = useState(false);
  const maySave = useCan("admin");
  const stepList = useRef(null);
  const stepsRef = useRef(steps);
  stepsRef.current = steps;

  useEffect(() => {
    get("/api/blocks").then((found) => setBlocks(found.items)).catch(setFailure);
    get("/api/files?limit=200").then((found) => setFiles(found.items.map((f) => f.name)))
      .catch(() => setFiles([]));
    if (id) {
      get(`/api/definitions/${encodeURIComponent(id)}`).then((definition) => {
        const found = stepsOf(definition);
        if (!found) {
          setFailure(new Error(`${definition.name} is not a straight pipeline of blocks that `
            + "the builder can write back unchanged (it has guards, disabled parts, on_error, "
            + "manual steps, branches or action descriptions): edit its JSON with PUT "
            + "instead."));
          return;
        }
        setMeta({ id: definition.id, name: definition.name,
                  description: definition.description || "", ready: found.ready });
        setSteps(found.steps);
      }).catch(setFailure);
    }
  }, [id]);

  const definition = useMemo(() => definitionOf(meta, steps), [meta, steps]);
  const draft = useMemo(() => JSON.stringify(definition), [definition]);
  const latest = useRef(draft);
  latest.current = draft;

  useEffect(() => {
    if (steps.length === 0 || !meta.id.trim()) { setCheck(null); return undefined; }
    const timer = setTimeout(() => {
      const path = id ? `/api/definitions/${encodeURIComponent(id)}/validate`
        : "/api/definitions/validate";
      // An answer for an earlier draft that comes after a later one is not shown.
      const shown = (found) => draft === latest.current && setCheck({ ...found, draft });
      post(path, definition).then(shown).catch((error) => shown({
        valid: false, errors: error.problem?.errors || [{ path: "", message: error.message }],
        warnings: [], states: {} }));
    }, 250);
    return () => clearTimeout(timer);
  }, [draft]);
  // A check of an earlier version of the pipeline: still shown, but not to be trusted.
  const stale = !check || check.draft !== draft;

  const add = (type, at = null) => {
    const step = newStep(type);
    setSteps((known) => {
      const index = at ?? known.length;
      return [...known.slice(0, index), step, ...known.slice(index)];
    });
    setSelected(step.key);
  };
  // Where the focus goes once the steps are drawn again after ↑, ↓ or Remove (the button
  // pressed is moved or gone, and the browser would drop the focus to the page).
  const focusNext = useRef(null);
  const move = (index, delta) => {
    const moved = stepsRef.current[index];
    if (!moved) return;
    focusNext.current = { key: moved.key, tool: delta < 0 ? "up" : "down" };
    setSteps((known) => {
      const copy = [...known];
      const [taken] = copy.splice(index, 1);
      copy.splice(index + delta, 0, taken);
      return copy;
    });
  };
  const remove = (index) => {
    const known = stepsRef.current;
    const neighbour = known[index + 1] || known[index - 1];
    focusNext.current = neighbour ? { key: neighbour.key, tool: "remove" } : { palette: true };
    setSteps((current) => current.filter((_, i) => i !== index));
  };
  useEffect(() => {
    const wanted = focusNext.current;
    focusNext.current = null;
    if (!wanted || !stepList.current) return;
    if (wanted.palette) {
      document.querySelector("[data-testid=palette] button")?.focus();
      return;
    }
    const card = [...stepList.current.children].find((li) => li.dataset.key === wanted.key);
    if (!card) return;
    // A step moved to the top or bottom has that button disabled: the other one, then.
    const other = { up: "down", down: "up" }[wanted.tool];
    const button = [wanted.tool, other].filter(Boolean)
      .map((tool) => card.querySelector(`button[data-tool=${tool}]`))
      .find((found) => found && !found.disabled);
    button?.focus();
  }, [steps]);
  const update = (key, changes) => setSteps((known) => known.map(
    (step) => (step.key === key ? { ...step, ...changes } : step)));

  useSortable(stepList, () => ({
    group: { name: "pipeline", pull: false, put: true }, forceFallback: true,
    fallbackOnBody: true, handle: ".grip", draggable: "li.step, li.palette-item",
    onAdd: (event) => {
      // The palette's own element was dragged here and a copy left in its place: put it
      // back, so the page's elements stay the ones it drew, and add the step to the state.
      const type = event.item.dataset.type;
      event.clone.replaceWith(event.item);
      add(type, event.newIndex);
    },
    onUpdate: (event) => {
      // Put the element back where it was and let the state order the steps.
      const { from, item, oldIndex, newIndex } = event;
      from.removeChild(item);
      from.insertBefore(item, from.children[oldIndex] || null);
      setSteps((known) => {
        const copy = [...known];
        const [moved] = copy.splice(oldIndex, 1);
        copy.splice(newIndex, 0, moved);
        return copy;
      });
    },
  }), [blocks.length]);

  const save = async () => {
    setSaving(true);
    setNotice(null);
    try {
      const saved = id
        ? await request("PUT", `/api/definitions/${encodeURIComponent(id)}`, { body: definition })
        : await post("/api/definitions", definition);
      location.hash = `#/definitions/${encodeURIComponent(saved.id)}`;
    } catch (error) {
      setNotice({ message: error.message, problems: error.problem?.errors || [] });
    } finally {
      setSaving(false);
    }
  };

  if (failure) return html`<p class="error" role="alert">${failure.message}</p>`;
  const { steps: stepProblems, general } = problemsByStep(check?.errors || []);
  const current = steps.find((s) => s.key === selected) || null;
  const currentIndex = current ? steps.indexOf(current) : -1;
  const block = current && blocks.find((b) => b.type === current.type);
  const known = current && check?.states?.[`step_${currentIndex + 1}_${current.type}`];
  const columns = known?.columns_in?.columns || [];
  const canSave = steps.length > 0 && meta.id.trim() && check?.valid && !stale && !saving;
  const metaField = (key, label, props = {}) => html`
    <div class="field">
      <label for=${`meta-${key}`}>${label}</label>
      <input id=${`meta-${key}`} value=${meta[key]} ...${props}
             onInput=${(e) => setMeta({ ...meta, [key]: e.target.value })} />
    </div>`;
  return html`
    <${PageHeading}>${id ? `Edit ${meta.name || id}` : "New pipeline"}<//>
    <div class="builder">
      <${Palette} blocks=${blocks} onAdd=${(type) => add(type,
        currentIndex >= 0 ? currentIndex + 1 : null)} />
      <section class="pipeline" aria-labelledby="pipeline-title">
        <h2 id="pipeline-title">Pipeline</h2>
        <div class="meta-fields">
          ${metaField("id", "Id", { required: true, readOnly: Boolean(id),
                                    pattern: "[A-Za-z0-9_.\\-]{1,64}" })}
          ${metaField("name", "Name")}
          ${metaField("description", "Description")}
        </div>
        <ol ref=${stepList} class="steps-list" data-testid="pipeline"
            aria-label="Steps, in order">
          ${steps.map((step, index) => html`
            <${StepCard} key=${step.key} step=${step} index=${index} count=${steps.length}
                         selected=${step.key === selected}
                         problems=${stepProblems.get(index) || []}
                         onSelect=${() => setSelected(step.key)}
                         onMove=${(delta) => move(index, delta)}
                         onRemove=${() => remove(index)} />`)}
        </ol>
        ${steps.length === 0 && html`<p class="drop-hint">Drop blocks here.</p>`}
        ${(check?.warnings || []).length > 0 && html`<ul class="warnings" aria-label="Warnings">
          ${check.warnings.map((p) => html`<li>${p.path ? `${p.path}: ` : ""}${p.message}</li>`)}
        </ul>`}
        ${general.length > 0 && html`<ul class="problems">
          ${general.map((p) => html`<li class="error-text">${p.path ? `${p.path}: ` : ""}${
            p.message}</li>`)}</ul>`}
        <div class="save-bar">
          ${maySave && html`<button type="button" onClick=${save} disabled=${!canSave}>
            ${id ? "Save as a new version" : "Save"}</button>`}
          <span class="meta" role="status">${!meta.id.trim() ? "Give the pipeline an id."
            : steps.length === 0 ? "Add a block." : stale ? "Checking…"
            : check.valid ? "The pipeline passes the check."
            : `${check.errors.length} problem(s) to fix before saving.`}</span>
        </div>
        <${CannotDo} scope="admin" what="save definitions" />
        ${notice && html`<div role="alert"><p class="error">${notice.message}</p>
          <ul>${notice.problems.map((p) => html`<li>${p.path}: ${p.message}</li>`)}</ul></div>`}
        ${steps.length > 0 && html`<${Diagram} definition=${{ ...definition,
          id: definition.id || "draft" }} />`}
        <details class="json-view">
          <summary>The definition as JSON</summary>
          <pre data-testid="definition-json">${JSON.stringify(definition, null, 2)}</pre>
        </details>
      </section>
      <section class="params" aria-labelledby="params-title">
        <h2 id="params-title">${current ? `${currentIndex + 1}. ${blockTitle(current.type)}`
          : "Parameters"}</h2>
        ${!current ? html`<p class="help">Choose a step to set its parameters.</p>` : html`
          <div class="field">
            <label for="step-name">Step name</label>
            <input id="step-name" value=${current.name}
                   placeholder=${`${currentIndex + 1}. ${blockTitle(current.type)}`}
                   onInput=${(e) => update(current.key, { name: e.target.value })} />
          </div>
          ${columns.length > 0 && html`<p class="help">Columns here: ${columns.join(", ")}</p>`}
          ${block && html`<${SchemaForm} key=${current.key} schema=${block.params_schema}
                            value=${current.params} suggest=${(name) => (
                              name === "column" || name === "columns" ? columns
                                : name === "file" ? files : [])}
                            onChange=${(params) => update(current.key, { params })} />`}`}
      </section>
    </div>`;
}
