// A step's table, read page by page as it scrolls: only the rows in view are in the
// document, so 10,000 rows scroll as smoothly as 10. Columns sort on the server (the
// whole table, not the page), and the table downloads as CSV.
import { h } from "preact";
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import htm from "htm";

import { get, token } from "./api.js";

const html = htm.bind(h);

const ROW_HEIGHT = 32;
const PAGE_ROWS = 200;
const OVERSCAN = 10;
const MAX_BODY_HEIGHT = 480;

function dataPath(instanceId, seq, running = false) {
  const base = `/api/instances/${encodeURIComponent(instanceId)}`;
  if (running) return `${base}/progress/data`;
  return seq == null ? `${base}/data` : `${base}/history/${seq}/data`;
}

function cellText(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

/** Save the table as CSV (through fetch, so that a token goes in its header). */
async function download(instanceId, seq, running) {
  const headers = token() ? { Authorization: `Bearer ${token()}` } : {};
  const response = await fetch(`${dataPath(instanceId, seq, running)}?format=csv`, { headers });
  if (!response.ok) throw new Error(`The download failed (HTTP ${response.status}).`);
  const link = document.createElement("a");
  link.href = URL.createObjectURL(await response.blob());
  link.download = `${instanceId}-${seq ?? "current"}.csv`;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);  // after the download took it
}

/** The table of `instanceId` after history event `seq` (its current table if null); with
 * `running`, the running enrichment's table so far, read again whenever `refresh` moves
 * (the rows in view fill in where they stand). */
export function TableView({ instanceId, seq = null, caption, version = 0, running = false,
  refresh = 0 }) {
  const [shape, setShape] = useState(null);
  const [failure, setFailure] = useState(null);
  const [sort, setSort] = useState(null);
  const [pages, setPages] = useState(new Map());
  const [scrollTop, setScrollTop] = useState(0);
  const [viewHeight, setViewHeight] = useState(480);
  const asked = useRef(new Set());
  const scroller = useRef(null);

  const query = (page) => {
    const params = new URLSearchParams({ offset: page * PAGE_ROWS, limit: PAGE_ROWS });
    if (sort) params.set("sort", sort);
    return `${dataPath(instanceId, seq, running)}?${params}`;
  };

  const generation = useRef(0);

  useEffect(() => {
    let live = true;
    generation.current += 1;
    asked.current = new Set([0]);
    setShape(null);
    setPages(new Map());
    setFailure(null);
    if (scroller.current) scroller.current.scrollTop = 0;
    setScrollTop(0);
    get(query(0)).then((first) => {
      if (!live) return;
      setShape({ columns: first.columns, total: first.total_rows, seq: first.seq });
      setPages(new Map([[0, first.rows]]));
    }).catch((error) => live && setFailure(error));
    return () => { live = false; };
  }, [instanceId, seq, sort, version, running]);

  useEffect(() => {
    if (!running || !refresh || !shape) return;
    const asOf = generation.current;
    for (const page of asked.current) {
      get(query(page)).then((found) => asOf === generation.current
        && setPages((known) => new Map(known).set(page, found.rows)))
        .catch(() => {});  // the run ended meanwhile: its final table replaces this one
    }
  }, [refresh]);

  useEffect(() => {
    if (!scroller.current) return undefined;
    const observer = new ResizeObserver(([entry]) => setViewHeight(entry.contentRect.height));
    observer.observe(scroller.current);
    return () => observer.disconnect();
  }, [shape !== null]);

  const first = Math.max(0, Math.floor(scrollTop / ROW_HEIGHT) - OVERSCAN);
  const last = shape ? Math.min(shape.total, Math.ceil((scrollTop + viewHeight) / ROW_HEIGHT)
    + OVERSCAN) : 0;

  useEffect(() => {
    if (!shape) return;
    for (let page = Math.floor(first / PAGE_ROWS); page * PAGE_ROWS < last; page += 1) {
      if (asked.current.has(page)) continue;
      asked.current.add(page);
      const asOf = generation.current;  // a page of an earlier order or table is dropped
      get(query(page)).then((found) => asOf === generation.current
        && setPages((known) => new Map(known).set(page, found.rows)))
        .catch((error) => asOf === generation.current && setFailure(error));
    }
  }, [first, last, shape]);

  const errorColumns = useMemo(
    () => (shape ? shape.columns.filter((c) => c.endsWith("_error")) : []), [shape]);

  if (failure) {
    return html`<p class="error" role="alert">${failure.code === "no_table"
      ? "This step has no table." : failure.message}</p>`;
  }
  if (!shape) return html`<p aria-busy="true">Loading the table…</p>`;

  const rows = [];
  for (let index = first; index < last; index += 1) {
    const page = pages.get(Math.floor(index / PAGE_ROWS));
    rows.push({ index, row: page ? page[index % PAGE_ROWS] : null });
  }
  const nextSort = (column) => (sort === column ? `-${column}` : sort === `-${column}` ? null : column);
  const ariaSort = (column) => (sort === column ? "ascending" : sort === `-${column}`
    ? "descending" : "none");
  const template = `4.5rem repeat(${shape.columns.length}, minmax(9rem, 1fr))`;
  return html`
    <div class="table-view" data-testid="table">
      <div class="table-tools">
        <span class="meta" data-testid="table-caption">${
          `${caption ? `${caption} · ` : ""}${shape.total} rows · ${shape.columns.length} columns`
        }</span>
        <button type="button" class="secondary"
                onClick=${() => download(instanceId, seq, running).catch(setFailure)}>
          Download CSV</button>
      </div>
      <div class="grid" role="table" aria-label=${caption || "Table"}
           aria-rowcount=${shape.total + 1}
           style=${{ "--grid-width": `${4.5 + 9 * shape.columns.length}rem` }}>
        <div class="grid-head" role="rowgroup">
          <div class="grid-row" role="row" style=${{ gridTemplateColumns: template }}>
            <div role="columnheader" class="cell index">#</div>
            ${shape.columns.map((column) => html`
              <div role="columnheader" class="cell" aria-sort=${ariaSort(column)} key=${column}>
                <button type="button" class="sort" onClick=${() => setSort(nextSort(column))}
                        title=${`Sort by ${column}`}>
                  ${column}${sort === column ? " ▲" : sort === `-${column}` ? " ▼" : ""}
                </button>
              </div>`)}
          </div>
        </div>
        <div class="grid-body" role="rowgroup" ref=${scroller} tabindex="0"
             aria-label="Rows (scroll)" onScroll=${(e) => setScrollTop(e.target.scrollTop)}
             style=${{ height: `${Math.min(MAX_BODY_HEIGHT, shape.total * ROW_HEIGHT + 2)}px` }}>
          <div style=${{ height: `${shape.total * ROW_HEIGHT}px`, position: "relative" }}>
            ${rows.map(({ index, row }) => {
              const failed = row && errorColumns.some((c) => row[c]);
              return html`
                <div role="row" key=${index} aria-rowindex=${index + 2}
                     class=${`grid-row${failed ? " row-error" : ""}`}
                     style=${{ gridTemplateColumns: template, top: `${index * ROW_HEIGHT}px` }}>
                  <div role="cell" class="cell index">${index + 1}</div>
                  ${shape.columns.map((column) => html`
                    <div role="cell" key=${column} title=${row ? cellText(row[column]) : ""}
                         class=${`cell${errorColumns.includes(column) && row?.[column]
                           ? " cell-error" : ""}`}>
                      ${row ? cellText(row[column]) : "…"}</div>`)}
                </div>`;
            })}
          </div>
        </div>
      </div>
    </div>`;
}
