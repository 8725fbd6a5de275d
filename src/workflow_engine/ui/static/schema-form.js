// A form for a block's parameters, generated from the JSON Schema that GET /api/blocks
// gives (pydantic's output: properties, $ref into $defs, anyOf, enums, arrays, maps).
// `suggest(fieldName)` gives suggestions for a text field (the columns known at that point
// for "column", the files for "file"); any value may still be typed, since a column may
// come from a step whose output is not known before it runs.
//
// Written here rather than taken from a library: the JSON Schema form libraries need a
// build step or a framework of their own, and none offers per-field suggestions; the
// schemas our blocks publish use a small subset, which this covers.
import { h } from "preact";
import { useId, useState } from "preact/hooks";
import htm from "htm";

const html = htm.bind(h);

/** An element id for this field, the same at every render. */
const useFieldId = (stem) => `${stem}-${useId()}`;

/** The text typed into an input, kept as typed: `parse` gives the value it stands for,
 * and the field shows the text, not the value, so "0.0" stays "0.0" while typing. */
function useTyped(value, parse) {
  const [text, setText] = useState(value === undefined || value === null ? ""
    : typeof value === "object" ? JSON.stringify(value) : String(value));
  return [text, (raw, onChange) => { setText(raw); onChange(parse(raw)); }];
}

/** `schema` with a `$ref` resolved against the root's `$defs`. */
export function resolve(schema, root) {
  if (schema && schema.$ref) {
    const name = schema.$ref.replace("#/$defs/", "");
    return { ...root.$defs[name], ...schema, $ref: undefined };
  }
  return schema || {};
}

const PRIMITIVES = new Set(["string", "integer", "number", "boolean", "null"]);

function isPrimitiveUnion(schema, root) {
  const kinds = (schema.anyOf || []).map((variant) => resolve(variant, root).type);
  if (kinds.every((kind) => kind === "string" || kind === "null")) return false;
  return (schema.anyOf || []).every((variant) => {
    const v = resolve(variant, root);
    return PRIMITIVES.has(v.type) || (v.type === "array" && PRIMITIVES.has(resolve(v.items, root).type))
      || (v.type === "array" && (v.items?.anyOf || []).every((i) => PRIMITIVES.has(i.type)));
  });
}

/** Text typed for a union of plain values: a number, true/false, a JSON list, or text. */
export function parseLoose(text) {
  const trimmed = text.trim();
  if (trimmed === "") return undefined;
  if (/^-?\d+(\.\d+)?$/.test(trimmed)) return Number(trimmed);
  if (trimmed === "true" || trimmed === "false") return trimmed === "true";
  if (trimmed.startsWith("[") || (trimmed.startsWith('"') && trimmed.endsWith('"'))) {
    try { return JSON.parse(trimmed); } catch { /* plain text then */ }
  }
  return text;
}

function titleOf(name, schema) {
  return schema.title || name.replaceAll("_", " ");
}

function optionsFor(suggest, name) {
  return (suggest && suggest(name)) || [];
}

function Help({ id, schema }) {
  return schema.description ? html`<small id=${id} class="help">${schema.description}</small>` : null;
}

function ScalarField({ name, schema, value, onChange, suggest, required, label }) {
  const id = useFieldId(`f-${name}`);
  const help = `${id}-help`;
  const text = label || titleOf(name, schema);
  const labelClass = required ? "required" : null;
  if (schema.enum) {
    return html`
      <div class="field">
        <label for=${id} class=${labelClass}>${text}</label>
        <select id=${id} aria-describedby=${schema.description ? help : null}
                onChange=${(e) => onChange(e.target.value === "" ? undefined : e.target.value)}>
          ${!required && html`<option value="" selected=${value === undefined}>
            ${schema.default !== undefined ? `default (${schema.default})` : "not set"}</option>`}
          ${required && value === undefined && html`<option value="" disabled selected>
            choose…</option>`}
          ${schema.enum.map((option) => html`
            <option value=${option} selected=${value === option}>${option}</option>`)}
        </select>
        <${Help} id=${help} schema=${schema} />
      </div>`;
  }
  if (schema.type === "boolean") {
    const checked = value === undefined ? Boolean(schema.default) : value;
    return html`
      <div class="field checkbox">
        <input id=${id} type="checkbox" checked=${checked}
               aria-describedby=${schema.description ? help : null}
               onChange=${(e) => onChange(e.target.checked)} />
        <label for=${id}>${text}</label>
        <${Help} id=${help} schema=${schema} />
      </div>`;
  }
  const numeric = schema.type === "integer" || schema.type === "number";
  const [typed, type] = useTyped(value, (raw) => {
    if (raw === "") return undefined;
    return numeric && Number.isFinite(Number(raw)) ? Number(raw) : raw;
  });
  const options = optionsFor(suggest, name);
  const listId = options.length ? `${id}-options` : null;
  return html`
    <div class="field">
      <label for=${id} class=${labelClass}>${text}</label>
      <input id=${id} type="text" inputmode=${numeric ? "decimal" : null} value=${typed}
             list=${listId}
             required=${required} placeholder=${schema.default !== undefined && schema.default !== null
               ? String(schema.default) : ""}
             aria-describedby=${schema.description ? help : null}
             onInput=${(e) => type(e.target.value, onChange)} />
      ${listId && html`<datalist id=${listId}>
        ${options.map((c) => html`<option value=${c} />`)}</datalist>`}
      <${Help} id=${help} schema=${schema} />
    </div>`;
}

function LooseField({ name, schema, value, onChange, suggest, label }) {
  const id = useFieldId(`f-${name}`);
  const options = optionsFor(suggest, name);
  const [typed, type] = useTyped(value, parseLoose);
  return html`
    <div class="field">
      <label for=${id}>${label || titleOf(name, schema)}</label>
      <input id=${id} type="text" value=${typed}
             aria-describedby=${`${id}-help`}
             onInput=${(e) => type(e.target.value, onChange)}
             list=${options.length ? `${id}-options` : null} />
      ${options.length ? html`<datalist id=${`${id}-options`}>
        ${options.map((c) => html`<option value=${c} />`)}</datalist>` : null}
      <small id=${`${id}-help`} class="help">${schema.description || ""} A number, true or
        false, a JSON list such as ["a", "b"], or text; quote text that would read as
        one of those ("01234").</small>
    </div>`;
}

function ArrayField({ name, schema, value, onChange, suggest, root }) {
  const items = Array.isArray(value) ? value : [];
  const itemSchema = resolve(schema.items, root);
  const title = titleOf(name, schema);
  const set = (index, item) => onChange(items.map((old, i) => (i === index ? item : old)));
  const blank = itemSchema.type === "object" ? {} : "";
  return html`
    <fieldset class="array">
      <legend>${title}</legend>
      ${schema.description && html`<small class="help">${schema.description}</small>`}
      ${items.map((item, index) => html`
        <div class="array-item" key=${index}>
          <${Field} name=${name === "columns" ? "column" : `${name}_${index}`} schema=${itemSchema}
                    root=${root} value=${item} suggest=${suggest}
                    label=${`${title} ${index + 1}`}
                    onChange=${(next) => set(index, next)} required=${true} />
          <button type="button" class="secondary small"
                  aria-label=${`Remove ${title} ${index + 1}`}
                  onClick=${() => onChange(items.filter((_, i) => i !== index))}>Remove</button>
        </div>`)}
      <button type="button" class="secondary small"
              onClick=${() => onChange([...items, blank])}>Add ${title.toLowerCase()}</button>
    </fieldset>`;
}

function MapField({ name, schema, value, onChange, suggest, root }) {
  const entries = Object.entries(value && typeof value === "object" ? value : {});
  const valueSchema = resolve(
    schema.additionalProperties || Object.values(schema.patternProperties || {})[0] || {}, root);
  const title = titleOf(name, schema);
  const baseId = useFieldId(`m-${name}`);
  const rebuild = (pairs) => onChange(Object.fromEntries(pairs));
  return html`
    <fieldset class="map">
      <legend>${title}</legend>
      ${schema.description && html`<small class="help">${schema.description}</small>`}
      ${entries.map(([key, item], index) => {
        const keyId = `${baseId}-k${index}`;
        return html`
          <div class="map-item" key=${index}>
            <div class="field">
              <label for=${keyId}>Name ${index + 1}</label>
              <input id=${keyId} type="text" value=${key} required
                     onInput=${(e) => {
                       const renamed = e.target.value;
                       // Two entries of one name would merge into one: not taken.
                       if (entries.some(([other], i) => i !== index && other === renamed)) {
                         e.target.value = key;
                         return;
                       }
                       rebuild(entries.map((pair, i) => (i === index ? [renamed, pair[1]] : pair)));
                     }} />
            </div>
            <${Field} name=${name === "columns" ? "column" : `${name}_value`} schema=${valueSchema}
                      root=${root} value=${item} suggest=${suggest}
                      label=${`Value of ${key || `name ${index + 1}`}`} required=${true}
                      onChange=${(next) => rebuild(entries.map((pair, i) => (
                        i === index ? [pair[0], next] : pair)))} />
            <button type="button" class="secondary small" aria-label=${`Remove ${key || index + 1}`}
                    onClick=${() => rebuild(entries.filter((_, i) => i !== index))}>Remove</button>
          </div>`;
      })}
      <button type="button" class="secondary small"
              onClick=${() => rebuild([...entries, [`field_${entries.length + 1}`, ""]])}>
        Add to ${title.toLowerCase()}</button>
    </fieldset>`;
}

function ChoiceField({ name, schema, value, onChange, suggest, root, label }) {
  const variants = schema.anyOf.map((v) => resolve(v, root));
  const nullable = variants.some((v) => v.type === "null");
  const choices = variants.filter((v) => v.type !== "null");
  const matches = (v) => (v.type === "object" ? value && typeof value === "object"
    : v.type === "string" ? typeof value === "string" : false);
  const current = value === undefined || value === null ? -1
    : Math.max(0, choices.findIndex(matches));
  const id = useFieldId(`c-${name}`);
  const kinds = choices.map((v) => v.title || (v.type === "string" ? "text" : v.type));
  const legend = label || titleOf(name, schema);
  return html`
    <fieldset class="choice">
      <legend>${legend}</legend>
      <label for=${id}>Kind of ${legend.toLowerCase()}</label>
      <select id=${id} onChange=${(e) => {
        const chosen = Number(e.target.value);
        if (chosen < 0) onChange(undefined);
        else onChange(choices[chosen].type === "object" ? {}
          : choices[chosen].type === "array" ? [] : "");
      }}>
        ${(nullable || current < 0) && html`<option value="-1" selected=${current < 0}>
          ${schema.default === null || nullable ? "not set (default)" : "choose"}</option>`}
        ${kinds.map((kind, index) => html`
          <option value=${index} selected=${index === current}>${kind}</option>`)}
      </select>
      ${current >= 0 && html`<${Field} name=${name} schema=${choices[current]} root=${root}
          value=${value} onChange=${onChange} suggest=${suggest}
          label=${`${legend} (${kinds[current]})`} required=${true} />`}
    </fieldset>`;
}

function ObjectField({ schema, value, onChange, suggest, root, label, nested }) {
  const current = value && typeof value === "object" ? value : {};
  const required = new Set(schema.required || []);
  const fields = Object.entries(schema.properties || {}).map(([key, sub]) => html`
    <${Field} key=${key} name=${key} schema=${resolve(sub, root)} root=${root}
              value=${current[key]} suggest=${suggest} required=${required.has(key)}
              onChange=${(next) => {
                const copy = { ...current };
                if (next === undefined) delete copy[key];
                else copy[key] = next;
                onChange(copy);
              }} />`);
  if (!nested) return html`<div class="object">${fields}</div>`;
  return html`<fieldset class="object"><legend>${label || schema.title}</legend>${fields}</fieldset>`;
}

/** One field of any kind the block schemas use. */
export function Field(props) {
  const schema = resolve(props.schema, props.root);
  const all = { ...props, schema };
  if (schema.anyOf) {
    return isPrimitiveUnion(schema, props.root) ? html`<${LooseField} ...${all} />`
      : html`<${ChoiceField} ...${all} />`;
  }
  if (schema.type === "array") return html`<${ArrayField} ...${all} />`;
  if (schema.type === "object") {
    return schema.properties ? html`<${ObjectField} ...${all} nested=${true} />`
      : html`<${MapField} ...${all} />`;
  }
  return html`<${ScalarField} ...${all} />`;
}

/** The whole parameters form of a block. */
export function SchemaForm({ schema, value, onChange, suggest }) {
  return html`<${ObjectField} schema=${schema} root=${schema} value=${value}
                              onChange=${onChange} suggest=${suggest} nested=${false} />`;
}
