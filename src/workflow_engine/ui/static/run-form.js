// Starting an instance: for a pipeline, its input file (chosen, or uploaded with a
// preview), a trial run on the first rows, and what the run will ask of the upstream API.
import { h } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import htm from "htm";

import { get, post } from "./api.js";

const html = htm.bind(h);
const PREVIEW_ROWS = 5;
const ESTIMATE_DELAY_MS = 250;

/** The states that read a file, in the definition's order. */
function readers(definition) {
  return definition.states.filter((state) => state.block && state.block.type === "read_csv");
}

/** The start's `inputs`: each reader's file when changed, and the trial's `max_rows`. */
export function inputsOf(definition, files, trialRows) {
  const inputs = {};
  for (const state of readers(definition)) {
    const chosen = {};
    if (files[state.id] && files[state.id] !== state.block.params.file) chosen.file = files[state.id];
    if (trialRows) chosen.max_rows = trialRows;
    if (Object.keys(chosen).length) inputs[state.id] = chosen;
  }
  return inputs;
}

function Preview({ summary }) {
  if (!summary) return null;
  const rows = summary.preview.slice(0, PREVIEW_ROWS);
  return html`
    <div class="table-scroll">
      <table class="list" data-testid="file-preview">
        <caption>
          ${summary.name}: ${summary.columns.length} columns${summary.row_count != null
            ? `, ${summary.row_count} rows` : ""}; the first ${rows.length} rows
        </caption>
        <thead><tr>${summary.columns.map((c) => html`<th scope="col" key=${c}>${c}</th>`)}</tr></thead>
        <tbody>
          ${rows.map((row, n) => html`<tr key=${n}>
            ${summary.columns.map((c) => html`<td key=${c}>${row[c] ?? ""}</td>`)}</tr>`)}
        </tbody>
      </table>
    </div>`;
}

/** One reader's file: a choice among the stored files, or an upload. */
function InputFile({ state, files, value, onChange, onUploaded }) {
  const [summary, setSummary] = useState(null);
  const [failure, setFailure] = useState(null);
  const [busy, setBusy] = useState(false);
  const uploaded = useRef(null);  // the upload's own summary, which counts its rows
  useEffect(() => {
    if (!value) return undefined;
    if (uploaded.current && uploaded.current.name === value) {
      setSummary(uploaded.current);
      return undefined;
    }
    let live = true;
    setFailure(null);
    get(`/api/files/${encodeURIComponent(value)}/preview?rows=${PREVIEW_ROWS}`)
      .then((found) => live && setSummary(found))
      .catch((error) => { if (live) { setSummary(null); setFailure(error.message); } });
    return () => { live = false; };
  }, [value]);
  const upload = async (event) => {
    const file = event.target.files[0];
    if (!file) return;
    setBusy(true);
    setFailure(null);
    const form = new FormData();
    form.append("file", file, file.name);
    try {
      const answer = await post("/api/files", form);
      uploaded.current = answer;
      await onUploaded();
      onChange(answer.name);
    } catch (error) {
      setFailure(error.message);
    } finally {
      setBusy(false);
      event.target.value = "";
    }
  };
  const names = files.map((f) => f.name);
  if (value && !names.includes(value)) names.unshift(value);
  const id = `file-${state.id}`;
  return html`
    <fieldset class="input-file">
      <legend>Input of “${state.name}”</legend>
      <label for=${id}>Input file</label>
      <select id=${id} value=${value} onChange=${(e) => onChange(e.target.value)}>
        ${names.map((name) => html`<option key=${name} value=${name}>${name}</option>`)}
      </select>
      <label for=${`${id}-upload`}>Or upload a CSV</label>
      <input id=${`${id}-upload`} type="file" accept=".csv,text/csv" onChange=${upload}
             disabled=${busy} aria-busy=${busy ? "true" : "false"} />
      ${failure && html`<p class="error" role="alert">${failure}</p>`}
      <${Preview} summary=${summary} />
    </fieldset>`;
}

function seconds(value) {
  if (value < 90) return `${Math.ceil(value)} s`;
  if (value < 5400) return `${Math.ceil(value / 60)} min`;
  return `${(value / 3600).toFixed(1)} h`;
}

/** What the run will ask of the upstream API, as the server estimates it. */
function Estimate({ estimate }) {
  if (!estimate || estimate.steps.length === 0) return null;
  const exact = estimate.steps.every((step) => step.exact);
  return html`
    <div class="estimate" data-testid="estimate" aria-live="polite">
      <h3>Before spending</h3>
      ${estimate.requests == null ? html`<p>${`The requests are not known before the run (${
          estimate.steps.map((step) => `${step.block}: ${step.rows == null ? "rows not known"
            : `${step.rows} rows`}`).join("; ")}): an input file cannot be read now, or a `
          + "block before makes a row per person it finds."}</p>` : html`
        <p>${`This run sends ${exact ? "" : "at most "}`}<strong>${estimate.requests}</strong>${
          ` upstream requests (${estimate.steps.map((step) => `${step.block}: ${step.rows} rows`)
            .join("; ")}); at the key's ${estimate.per_minute} requests/min, shared with every `
          + "run, that takes at least "}<strong>${seconds(estimate.least_seconds)}</strong>.</p>`}
      <p class="meta">${estimate.credits == null ? "Credits: no price is known for these blocks."
        : `Credits: ${estimate.credits}.`}${exact ? "" : " A block before the enrichment may drop rows."}</p>
    </div>`;
}

export function StartForm({ definition }) {
  const reading = readers(definition);
  const [id, setId] = useState("");
  const [files, setFiles] = useState([]);
  const [chosen, setChosen] = useState(() => Object.fromEntries(
    reading.map((state) => [state.id, state.block.params.file])));
  const [trial, setTrial] = useState(false);
  const [trialRows, setTrialRows] = useState("10");
  const [estimate, setEstimate] = useState(null);
  // What the form is still waiting for from the server (tests wait for it to settle).
  const [pending, setPending] = useState(0);
  const [asking, setAsking] = useState(false);  // the effects below have sent their asks
  const track = (promise) => {
    setPending((n) => n + 1);
    return promise.finally(() => setPending((n) => n - 1));
  };
  const [failure, setFailure] = useState(null);
  const [busy, setBusy] = useState(false);
  const rows = trial && Number.isInteger(Number(trialRows)) && Number(trialRows) >= 1
    ? Number(trialRows) : null;
  const inputs = inputsOf(definition, chosen, rows);
  const key = JSON.stringify(inputs);

  const loadFiles = () => get("/api/files").then((found) => setFiles(found.items));
  useEffect(() => {
    if (reading.length) track(loadFiles()).catch((error) => setFailure(error.message));
  }, [definition.id]);
  useEffect(() => {
    const paid = definition.states.some((s) => s.block && s.block.type !== "read_csv");
    if (!paid) return undefined;
    let live = true;
    setPending((n) => n + 1);
    let asked = false;
    const timer = setTimeout(() => {
      asked = true;
      post(`/api/definitions/${encodeURIComponent(definition.id)}/estimate`,
        { version: definition.version, inputs })
        .finally(() => setPending((n) => n - 1))
        .then((found) => live && setEstimate(found))
        .catch(() => live && setEstimate(null));
    }, ESTIMATE_DELAY_MS);
    return () => {
      live = false;
      clearTimeout(timer);
      if (!asked) setPending((n) => n - 1);
    };
  }, [definition.id, definition.version, key]);

  useEffect(() => setAsking(true), []);  // after the effects above, in the same flush

  const submit = async (event) => {
    event.preventDefault();
    setBusy(true);
    setFailure(null);
    try {
      const body = { definition_id: definition.id, version: definition.version };
      if (id.trim()) body.id = id.trim();
      if (Object.keys(inputs).length) body.inputs = inputs;
      const started = await post("/api/instances", body);
      location.hash = `#/instances/${encodeURIComponent(started.id)}`;
    } catch (error) {
      setFailure(error.message);
    } finally {
      setBusy(false);
    }
  };
  return html`
    <form class="start-form" onSubmit=${submit} aria-labelledby="start-title"
          data-settled=${asking && pending === 0 ? "true" : "false"}>
      <h2 id="start-title">Start an instance</h2>
      ${reading.map((state) => html`
        <${InputFile} key=${state.id} state=${state} files=${files} value=${chosen[state.id]}
          onChange=${(name) => setChosen((was) => ({ ...was, [state.id]: name }))}
          onUploaded=${loadFiles} />`)}
      ${reading.length > 0 && html`
        <div class="trial">
          <input id="trial" type="checkbox" checked=${trial}
                 onChange=${(e) => setTrial(e.target.checked)} />
          <label for="trial">Trial run on the first rows only</label>
          <label for="trial-rows">Rows</label>
          <input id="trial-rows" type="number" min="1" step="1" value=${trialRows}
                 disabled=${!trial} onInput=${(e) => setTrialRows(e.target.value)} />
        </div>`}
      <${Estimate} estimate=${estimate} />
      <div class="inline-form">
        <label for="instance-id">Instance id (optional)</label>
        <input id="instance-id" value=${id} onInput=${(e) => setId(e.target.value)}
               placeholder="chosen by the server" />
        <button type="submit" disabled=${busy} aria-busy=${busy ? "true" : "false"}>
          ${trial ? "Start trial" : "Start"}</button>
      </div>
      ${failure && html`<p class="error" role="alert">${failure}</p>`}
    </form>`;
}
