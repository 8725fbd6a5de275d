// The page's shell: navigation, the token prompt, what the token may do, and the view the
// address names.
import { h, render } from "preact";
import { useEffect, useState } from "preact/hooks";
import htm from "htm";

import { Access } from "./access.js";
import { onUnauthenticated, setToken, token, whoami } from "./api.js";
import { BuilderPage } from "./builder.js";
import { DefinitionPage, PipelinesPage } from "./pipelines.js";
import { InstancePage, RunsPage } from "./instance.js";
import { pageChanged } from "./widgets.js";

const html = htm.bind(h);

/** The view of an address after `#`: `/`, `/definitions/<id>`, `/instances/<id>`, `/runs`. */
export function route(hash) {
  const parts = hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "definitions" && parts[1]) return { view: "definition", id: parts[1] };
  if (parts[0] === "instances" && parts[1]) return { view: "instance", id: parts[1] };
  if (parts[0] === "runs") return { view: "runs" };
  if (parts[0] === "builder") return { view: "builder", id: parts[1] || null };
  return { view: "pipelines" };
}

function useRoute() {
  const [current, setCurrent] = useState(route(location.hash));
  useEffect(() => {
    let shown = route(location.hash);
    const changed = () => {
      const next = route(location.hash);
      if (next.view === shown.view && next.id === shown.id) return;  // the same page
      shown = next;
      pageChanged();
      setCurrent(next);
    };
    addEventListener("hashchange", changed);
    return () => removeEventListener("hashchange", changed);
  }, []);
  return current;
}

/** Asks for a token and keeps it for the session only once the server accepts it. */
function TokenPrompt({ reason, onDone }) {
  const [value, setValue] = useState("");
  const [refusal, setRefusal] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (event) => {
    event.preventDefault();
    const candidate = value.trim();
    setBusy(true);
    setRefusal(null);
    try {
      const found = await whoami(candidate);
      setToken(candidate);
      onDone(found);
    } catch (error) {
      setRefusal(error.status === 401
        ? "The server refused this token: check it and enter it again."
        : `The token could not be checked: ${error.message}`);
    } finally {
      setBusy(false);
    }
  };
  return html`
    <section class="panel token-prompt" aria-labelledby="token-title">
      <h2 id="token-title">This server needs an API token</h2>
      <p>${reason} The token is kept for this tab's session only.</p>
      <form onSubmit=${submit}>
        <label for="token-input">API token</label>
        <input id="token-input" type="password" autocomplete="off" required
               value=${value} onInput=${(e) => setValue(e.target.value)} />
        <button type="submit" disabled=${busy}>Use token</button>
      </form>
      <div role="alert" class="alert-slot">
        ${refusal && html`<p class="error" data-testid="token-refused">${refusal}</p>`}
      </div>
    </section>`;
}

function App() {
  const current = useRoute();
  const [asked, setAsked] = useState(null);
  const [generation, setGeneration] = useState(0);
  const [access, setAccess] = useState(null);
  useEffect(() => onUnauthenticated((error) => setAsked(error.message)), []);
  useEffect(() => {
    // Once a token is known (or none is needed): what it may do. A 401 asks for a token
    // (the listener above); the answer to the prompt then sets it.
    if (asked || access) return undefined;
    let live = true;
    whoami().then((found) => live && setAccess(found)).catch((error) => {
      if (live && error.status !== 401) setAccess({ scopes: [], failure: error.message });
    });
    return () => { live = false; };
  }, [asked, access]);
  useEffect(() => {
    const view = { pipelines: "Pipelines", definition: current.id, instance: current.id,
                   runs: "Runs", builder: current.id ? `Edit ${current.id}` : "New pipeline",
    }[current.view];
    document.title = `${view} · Workflow engine`;
  }, [current.view, current.id]);

  const navLink = (href, label, views) => html`
    <a href=${href} aria-current=${views.includes(current.view) ? "page" : null}>${label}</a>`;
  let page;
  if (asked) {
    page = html`<${TokenPrompt} reason=${asked}
                  onDone=${(found) => {
                    setAccess(found);
                    setAsked(null);
                    setGeneration(generation + 1);
                  }} />`;
  } else if (current.view === "definition") {
    page = html`<${DefinitionPage} key=${`d-${current.id}-${generation}`} id=${current.id} />`;
  } else if (current.view === "instance") {
    page = html`<${InstancePage} key=${`i-${current.id}-${generation}`} id=${current.id} />`;
  } else if (current.view === "builder") {
    page = html`<${BuilderPage} key=${`b-${current.id}-${generation}`} id=${current.id} />`;
  } else if (current.view === "runs") {
    page = html`<${RunsPage} key=${`r-${generation}`} />`;
  } else {
    page = html`<${PipelinesPage} key=${`p-${generation}`} />`;
  }
  return html`
    <header class="top">
      <a class="brand" href="#/">Workflow engine</a>
      <nav aria-label="Main">
        ${navLink("#/", "Pipelines", ["pipelines", "definition"])}
        ${navLink("#/builder", "New pipeline", ["builder"])}
        ${navLink("#/runs", "Runs", ["runs", "instance"])}
        <a href="/docs">API docs</a>
      </nav>
      ${access?.token && html`<span class="who" data-testid="who">Token <strong>${
        access.token}</strong>: ${access.scopes.join(", ")}</span>`}
      ${token() && html`<button class="link" type="button"
          onClick=${() => { setToken(null); setAccess(null); setAsked("Enter another token."); }}>
          Forget token</button>`}
    </header>
    ${access?.failure && html`<p class="error" role="alert">What your token may do could
      not be told (${access.failure}), so nothing that changes anything is offered.</p>`}
    <main id="main"><${Access.Provider} value=${asked ? null : access}>${page}</${
      Access.Provider}></main>`;
}

const root = document.getElementById("app");
root.textContent = "";  // the "Loading…" shown before the modules arrive
render(html`<${App} />`, root);
