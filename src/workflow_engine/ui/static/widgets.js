// Small pieces shared by the views.
import { h } from "preact";
import { useEffect, useRef } from "preact/hooks";
import htm from "htm";

const html = htm.bind(h);

export function formatTime(iso) {
  if (!iso) return "";
  const at = new Date(iso);
  return at.toLocaleString(undefined, {
    year: "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
}

/** An instance's status as text with a colour (the text carries the meaning). */
export function StatusBadge({ status }) {
  return html`<span class=${`badge is-${status}`}>${status}</span>`;
}

function millis(at) {
  return typeof at === "number" ? at : Date.parse(at);
}

/** Seconds left at the rate so far, if it can be told. */
export function eta(progress, now = Date.now()) {
  const { rows_done: done, rows_total: total, started_at: started } = progress;
  if (!total || !done || started == null) return null;
  const elapsed = (now - millis(started)) / 1000;
  if (!(elapsed > 0)) return null;
  return Math.max(0, (total - done) / (done / elapsed));
}

/** Rows done of total as a progress bar, with an estimate of the time left. */
export function Progress({ progress }) {
  if (!progress) return null;
  const { rows_done: done, rows_total: total } = progress;
  const label = total == null ? `${done} rows done` : `${done} of ${total} rows`;
  const left = eta(progress);
  const sent = progress.rows_sent;
  const waiting = sent != null && total != null ? Math.max(0, total - sent) : null;
  return html`
    <div class="progress" data-testid="progress">
      <label for="run-progress">${progress.block}: <span class="rows">${label}</span></label>
      <progress id="run-progress" max=${total ?? undefined}
                value=${total == null ? undefined : done}>${label}</progress>
      ${left != null && html`<span class="meta">about ${Math.ceil(left)} s left</span>`}
      ${sent != null && html`<span class="meta" data-testid="upstream">
        ${Math.max(0, sent - done)} sent, awaiting answers${waiting ? html` · <span
          class="waiting">${waiting} waiting for the rate budget</span>` : ""}</span>`}
      ${progress.branches && html`<${BranchList} branches=${progress.branches} />`}
    </div>`;
}

/** A fork's branches, each with its block, rows and status. */
function BranchList({ branches }) {
  return html`
    <ul class="branches" aria-label="Branches" data-testid="branches">
      ${branches.map((branch) => {
        const rows = branch.rows_total == null ? `${branch.rows_done} rows done`
          : `${branch.rows_done} of ${branch.rows_total} rows`;
        return html`
          <li key=${branch.id} data-branch=${branch.id} data-status=${branch.status}>
            <strong>${branch.name}</strong> <span class="meta">(${branch.block})</span>:
            ${" "}${rows} · <span class="branch-status">${branch.status}</span>
          </li>`;
      })}
    </ul>`;
}

// Where focus was when the address changed, while the new page's heading is still to come.
let arriving = null;

/** The address changed by the user's doing (a link, Back, a saved form): the next page's
 * heading takes the focus when it is drawn, so that keyboard and screen reader users
 * start on the page they came to. Not called for the page the browser first loads. */
export function pageChanged() {
  arriving = { from: document.activeElement };
}

/** A page's h1: focusable by script only (tabindex -1), and focused on arrival unless
 * the user has since moved the focus elsewhere. */
export function PageHeading({ children }) {
  const ref = useRef(null);
  useEffect(() => {
    if (!arriving || !ref.current) return;
    const active = document.activeElement;
    const untouched = !active || active === document.body || active === arriving.from
      || !active.isConnected;
    arriving = null;
    if (untouched) ref.current.focus();
  }, []);
  return html`<h1 tabindex="-1" ref=${ref}>${children}</h1>`;
}
