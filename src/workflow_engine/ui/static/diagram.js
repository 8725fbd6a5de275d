// A definition drawn as a graph: states as boxes, actions as arrows, laid out by ELK's
// layered algorithm (the vendored elkjs), drawn as SVG by the page.
import { h } from "preact";
import { useEffect, useState } from "preact/hooks";
import htm from "htm";

const html = htm.bind(h);

let elkLoading = null;

/** The layout engine, loaded on the first diagram (it is the page's largest file). */
function elk() {
  if (!elkLoading) {
    elkLoading = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = "/ui/vendor/elk.bundled.js";
      script.onload = () => resolve(new window.ELK());
      script.onerror = () => reject(new Error("The diagram layout could not be loaded."));
      document.head.append(script);
    });
  }
  return elkLoading;
}

const CHAR_WIDTH = 7.2;
const NODE_HEIGHT = 44;

const BRANCH_LINE = 16;

/** A fork's branches, each drawn as a line inside its state: "name (block)". */
function branchLabels(state) {
  if (state.block?.type !== "branches") return [];
  return (state.block.params?.branches || []).map(
    (branch) => `${branch.name || branch.id} (${branch.block?.type})`);
}

function nodeWidth(state) {
  const label = Math.max(state.name.length, (state.block?.type || "").length + 2,
    ...branchLabels(state).map((line) => line.length + 2));
  return Math.max(90, Math.round(label * CHAR_WIDTH) + 28);
}

/** The graph ELK lays out: one node per state, one edge per (action, from state). */
export function graphOf(definition) {
  const children = definition.states.map((state) => ({
    id: state.id, width: nodeWidth(state),
    height: NODE_HEIGHT + BRANCH_LINE * branchLabels(state).length,
  }));
  const edges = [];
  for (const action of definition.actions) {
    for (const from of action.from_states) {
      edges.push({
        id: `${action.id}@${from}`, sources: [from], targets: [action.to_state],
        labels: [{ text: action.name, width: action.name.length * 6.4 + 8, height: 14 }],
      });
    }
  }
  return {
    id: "root",
    layoutOptions: {
      "elk.algorithm": "layered", "elk.direction": "RIGHT",
      "elk.layered.spacing.nodeNodeBetweenLayers": "56", "elk.spacing.nodeNode": "28",
      "elk.edgeLabels.inline": "false", "elk.spacing.edgeLabel": "4",
    },
    children, edges,
  };
}

function path(section) {
  const points = [section.startPoint, ...(section.bendPoints || []), section.endPoint];
  return points.map((p, i) => `${i ? "L" : "M"}${p.x.toFixed(1)},${p.y.toFixed(1)}`).join(" ");
}

/**
 * The diagram of `definition`. `current` lights a state; `visited` marks states an
 * instance has been in; `status` colours the current state (running, failed...).
 */
export function Diagram({ definition, current = null, visited = [], status = null }) {
  const [drawn, setDrawn] = useState(null);
  const [failure, setFailure] = useState(null);
  // What the layout depends on: a definition being edited changes without a new version.
  const shape = JSON.stringify([
    definition.states.map((s) => [s.id, s.name, s.block?.type]),
    definition.actions.map((a) => [a.id, a.name, a.from_states, a.to_state]),
  ]);
  useEffect(() => {
    let live = true;
    elk().then((engine) => engine.layout(graphOf(definition)))
      .then((layout) => live && setDrawn({ shape, layout }))
      .catch((error) => live && setFailure(error.message));
    return () => { live = false; };
  }, [shape]);

  if (failure) return html`<p class="error">${failure}</p>`;
  // Until the layout of this shape is ready, the previous one (if any) stays on screen.
  if (!drawn) return html`<div class="diagram diagram-loading" aria-busy="true">Drawing…</div>`;
  const { layout } = drawn;
  const states = new Map(definition.states.map((s) => [s.id, s]));
  const seen = new Set(visited);
  const label = `Diagram of ${definition.name}: states ${definition.states.map((s) => s.name).join(", ")}`
    + (current ? `; current state ${states.get(current)?.name || current}` : "");
  const marker = `arrow-${definition.id}`;
  return html`
    <figure class="diagram">
      <svg role="img" aria-label=${label} viewBox="0 0 ${layout.width + 8} ${layout.height + 8}"
           width=${layout.width + 8} height=${layout.height + 8}>
        <defs>
          <marker id=${marker} viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7"
                  markerHeight="7" orient="auto-start-reverse">
            <path d="M0,0 L10,5 L0,10 z" class="arrowhead" />
          </marker>
        </defs>
        <g transform="translate(4,4)">
          ${layout.edges.map((edge) => html`
            <g class="edge" key=${edge.id}>
              ${(edge.sections || []).map((section) => html`
                <path d=${path(section)} marker-end="url(#${marker})" />`)}
              ${(edge.labels || []).map((l) => html`
                <text x=${l.x + 4} y=${l.y + 11}>${l.text}</text>`)}
            </g>`)}
          ${layout.children.filter((node) => states.has(node.id)).map((node) => {
            const state = states.get(node.id);
            const classes = ["node",
              state.is_initial && "initial", state.is_final && "final",
              state.enabled === false && "disabled", seen.has(node.id) && "visited",
              node.id === current && "current", node.id === current && status && `is-${status}`,
            ].filter(Boolean).join(" ");
            return html`
              <g class=${classes} key=${node.id} data-state=${node.id}
                 transform="translate(${node.x},${node.y})">
                <rect width=${node.width} height=${node.height} rx="8" />
                <text x=${node.width / 2} y=${state.block ? 18 : 27} text-anchor="middle"
                      class="name">${state.name}</text>
                ${state.block && html`<text x=${node.width / 2} y="34" text-anchor="middle"
                      class="block">${state.block.type}</text>`}
                ${branchLabels(state).map((line, i) => html`<text x=${node.width / 2}
                      y=${34 + BRANCH_LINE * (i + 1)} text-anchor="middle"
                      class="block branch">${line}</text>`)}
              </g>`;
          })}
        </g>
      </svg>
    </figure>`;
}
