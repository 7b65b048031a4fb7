// The schedule editor's DOM: toolbar, timeline bar, inline validation messages, the shot table and
// a raw JSON view. No ComfyUI imports: schedule_editor.js mounts it into a node as a DOM widget.
// All decisions (what is shown, what an edit does, what is valid) come from schedule_logic.js.

import {
  createEditorState, editorApply, editorExecuted, editorSetText, editorSetValue, editorUndo,
  editorUsePlanner, editorView, formatSeconds, formatTime,
} from "./schedule_logic.js";

export const STYLE_ID = "omnihuman-schedule-editor-style";
export const TEXT_COLUMNS = Object.freeze([
  { field: "expression", label: "expression", placeholder: "e.g. warm smile" },
  { field: "action", label: "action", placeholder: "e.g. lifts the letter" },
  { field: "camera", label: "camera", placeholder: "e.g. static close-up" },
  { field: "prompt", label: "prompt", placeholder: "empty = made from the other fields", multiline: true },
]);

const CSS = `
.ohs-root { box-sizing: border-box; width: 100%; height: 100%; display: flex; flex-direction: column;
  gap: 4px; font: 12px/1.35 system-ui, -apple-system, "Segoe UI", sans-serif;
  color: var(--input-text, #ddd); background: var(--comfy-menu-bg, #2b2b2b);
  border: 1px solid var(--border-color, #4e4e4e); border-radius: 6px; padding: 6px; overflow: hidden; }
.ohs-root * { box-sizing: border-box; }
.ohs-root [hidden] { display: none !important; }
.ohs-toolbar { display: flex; flex-wrap: wrap; gap: 4px; align-items: center; }
.ohs-toolbar .ohs-spacer { flex: 1; }
.ohs-btn { font: inherit; color: var(--input-text, #ddd); background: var(--comfy-input-bg, #222);
  border: 1px solid var(--border-color, #4e4e4e); border-radius: 4px; padding: 2px 8px; cursor: pointer; }
.ohs-btn:hover:not(:disabled) { border-color: var(--input-text, #ddd); }
.ohs-btn:disabled { opacity: 0.45; cursor: default; }
.ohs-btn.ohs-on { background: #3a5f8f; border-color: #5b8fd0; }
.ohs-badge { border-radius: 10px; padding: 1px 8px; font-size: 11px; white-space: nowrap;
  background: #444; color: #ccc; }
.ohs-badge.ohs-mode-planner { background: #2f4f3a; color: #b9e6c4; }
.ohs-badge.ohs-mode-edited { background: #5a4a22; color: #f3dc9c; }
.ohs-timeline { position: relative; height: 26px; flex: none; border-radius: 4px; overflow: hidden;
  background: var(--comfy-input-bg, #1e1e1e); border: 1px solid var(--border-color, #4e4e4e); }
.ohs-block { position: absolute; top: 3px; bottom: 3px; border-radius: 3px; overflow: hidden;
  white-space: nowrap; text-overflow: ellipsis; padding: 0 4px; font-size: 10px; line-height: 18px;
  color: #eee; background: #555c66; border: 1px solid #6b7380; cursor: pointer; }
.ohs-block.ohs-speaking { background: #2f6db5; border-color: #5b9be0; }
.ohs-block.ohs-selected { outline: 2px solid #f0c14b; outline-offset: -1px; z-index: 2; }
.ohs-block.ohs-bad { background: #8a2e2e; border-color: #d05555; }
.ohs-tick { position: absolute; top: 0; bottom: 0; width: 1px; background: rgba(255,255,255,0.22);
  pointer-events: none; z-index: 3; }
.ohs-audio-end { position: absolute; top: 0; bottom: 0; width: 2px; background: #f0c14b;
  pointer-events: none; z-index: 4; }
.ohs-scale { display: flex; justify-content: space-between; font-size: 10px; flex: none;
  color: var(--descrip-text, #999); margin-top: -2px; }
.ohs-note { font-size: 11px; color: var(--descrip-text, #aaa); flex: none; }
.ohs-note.ohs-error { color: var(--error-text, #ff7a7a); }
.ohs-issues { list-style: none; margin: 0; padding: 0; max-height: 64px; overflow: auto; flex: none; }
.ohs-issues li { font-size: 11px; padding: 1px 4px; border-radius: 3px; cursor: pointer; }
.ohs-issues li.ohs-error { color: var(--error-text, #ff7a7a); }
.ohs-issues li.ohs-warning { color: #e8c36a; }
.ohs-issues li:hover { background: rgba(255,255,255,0.06); }
.ohs-empty { flex: 1; display: flex; align-items: center; justify-content: center; text-align: center;
  color: var(--descrip-text, #999); padding: 12px; border: 1px dashed var(--border-color, #4e4e4e);
  border-radius: 4px; }
.ohs-table-wrap { flex: 1; min-height: 60px; overflow: auto; border-radius: 4px; }
.ohs-table { width: 100%; border-collapse: collapse; table-layout: fixed; }
.ohs-table th { position: sticky; top: 0; z-index: 1; text-align: left; font-weight: 600; font-size: 11px;
  color: var(--descrip-text, #aaa); background: var(--comfy-menu-bg, #2b2b2b); padding: 2px 3px; }
.ohs-table td { padding: 2px 3px; vertical-align: top; border-top: 1px solid rgba(255,255,255,0.06); }
.ohs-table tr.ohs-row { cursor: default; }
.ohs-table tr.ohs-row.ohs-selected td { background: rgba(240,193,75,0.10); }
.ohs-table td.ohs-num { vertical-align: middle; color: var(--descrip-text, #aaa); text-align: right; font-variant-numeric: tabular-nums; }
.ohs-table input[type=text], .ohs-table textarea { width: 100%; font: inherit; color: var(--input-text, #ddd);
  background: var(--comfy-input-bg, #222); border: 1px solid var(--border-color, #4e4e4e);
  border-radius: 3px; padding: 1px 4px; }
.ohs-table textarea { resize: vertical; min-height: 22px; height: 22px; }
.ohs-table input.ohs-time { font-variant-numeric: tabular-nums; }
.ohs-table .ohs-invalid { border-color: #d05555 !important; background: #3a2323 !important; }
.ohs-table .ohs-warn { border-color: #c9a24a !important; }
.ohs-table input[type=checkbox].ohs-invalid { outline: 2px solid #d05555; }
.ohs-table input[type=checkbox].ohs-warn { outline: 2px solid #c9a24a; }
.ohs-table tr.ohs-msg td { border-top: none; padding-top: 0; font-size: 11px; color: var(--error-text, #ff7a7a); }
.ohs-table tr.ohs-msg.ohs-warning td { color: #e8c36a; }
.ohs-raw { flex: 1; min-height: 80px; width: 100%; resize: none; font: 11px/1.4 ui-monospace, Menlo, Consolas, monospace;
  color: var(--input-text, #ddd); background: var(--comfy-input-bg, #1e1e1e);
  border: 1px solid var(--border-color, #4e4e4e); border-radius: 4px; padding: 4px; }
`;

/** Put the stylesheet into the page once (the first widget does it). */
export function injectStyles(doc) {
  if (!doc || !doc.head || doc.getElementById(STYLE_ID)) return;
  const style = doc.createElement("style");
  style.id = STYLE_ID;
  style.textContent = CSS;
  doc.head.appendChild(style);
}

function el(doc, tag, props = {}, children = []) {
  const node = doc.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null) continue;
    if (key === "className") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "style") Object.assign(node.style, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key in node) node[key] = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child) node.appendChild(child);
  return node;
}

function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
}

function isTextEntry(target) {
  const tag = target && target.tagName ? target.tagName.toUpperCase() : "";
  return tag === "TEXTAREA" || (tag === "INPUT" && target.type !== "checkbox");
}

/**
 * The editor. `element` is the widget's root; getValue()/setValue() are what ComfyUI saves and
 * sends; onExecuted(ui) takes the node's ui message. `onChange(value)` runs after every edit.
 */
export class ScheduleEditor {
  constructor({ document: doc = globalThis.document, onChange = null, value = "" } = {}) {
    this.doc = doc;
    this.onChange = onChange;
    this.state = createEditorState(value);
    this.selected = 0;
    this.showRaw = false;
    this.message = null; // {text, error} from the last action
    this.inputs = new Map(); // "index:field" -> input element of the table
    injectStyles(doc);
    this.element = el(doc, "div", { className: "ohs-root" });
    this.element.addEventListener("keydown", (e) => {
      // Delete/Backspace typed in a cell must not reach the canvas (it would delete the node).
      if (isTextEntry(e.target) && !e.ctrlKey && !e.metaKey && !e.altKey) e.stopPropagation();
    });
    this.build();
    this.render();
  }

  // ---- the contract with ComfyUI -------------------------------------------------------------
  getValue() {
    return this.state.value;
  }

  setValue(v) {
    this.state = editorSetValue(this.state, v);
    this.message = null;
    this.render();
  }

  onExecuted(message) {
    this.state = editorExecuted(this.state, message);
    this.message = null;
    this.render();
  }

  // ---- actions -------------------------------------------------------------------------------
  changed() {
    if (this.onChange) this.onChange(this.state.value);
  }

  apply(op, { rerender = true } = {}) {
    let res;
    try {
      res = editorApply(this.state, op);
    } catch (e) {
      // A schedule odd enough to trip an edit must not break the canvas; say so in the widget.
      res = { error: `this edit failed on this schedule (${e && e.message ? e.message : e}); fix it in the { } JSON view` };
    }
    if (res.error) {
      this.message = { text: res.error, error: true };
      this.render();
      return false;
    }
    this.state = res.state;
    this.message = res.note ? { text: res.note, error: false } : null;
    if (op.type === "add" || op.type === "split") this.selected = (op.index ?? 0) + 1;
    if (op.type === "delete") this.selected = Math.max(0, (op.index ?? 0) - 1);
    if (rerender) this.render();
    else this.renderChrome();
    this.changed();
    return true;
  }

  usePlanner() {
    this.state = editorUsePlanner(this.state);
    this.message = this.state.planner || this.state.output ? null
      : { text: "edits cleared: the node passes the planner's schedule through; it shows here after the next run", error: false };
    this.render();
    this.changed();
  }

  undo() {
    this.state = editorUndo(this.state);
    this.message = null;
    this.render();
    this.changed();
  }

  setRawText(text) {
    this.state = editorSetText(this.state, text);
    this.message = null;
    this.renderChrome();
    this.changed();
  }

  toggleRaw(force) {
    this.showRaw = force === undefined ? !this.showRaw : !!force;
    this.render();
  }

  select(i, { scroll = false } = {}) {
    this.selected = i;
    this.renderChrome();
    if (scroll) {
      const input = this.inputs.get(`${i}:start`);
      const row = input && input.parentNode && input.parentNode.parentNode;
      if (row && row.scrollIntoView) row.scrollIntoView({ block: "nearest" });
    }
  }

  // ---- DOM -----------------------------------------------------------------------------------
  build() {
    const doc = this.doc;
    const button = (action, text, title, onClick) => el(doc, "button", {
      className: "ohs-btn", type: "button", text, title, dataset: { action }, onclick: onClick,
    });
    this.badge = el(doc, "span", { className: "ohs-badge" });
    this.buttons = {
      add: button("add", "+ Add", "add a shot after the selected one (it takes the second half of its time)",
        () => this.apply({ type: "add", index: this.selected })),
      split: button("split", "Split", "cut the selected shot in two at a segment boundary",
        () => this.apply({ type: "split", index: this.selected })),
      merge: button("merge", "Merge ↓", "merge the selected shot with the next one (keeps the selected shot's text)",
        () => this.apply({ type: "merge", index: this.selected })),
      delete: button("delete", "Delete", "delete the selected shot (its neighbour takes over its time)",
        () => this.apply({ type: "delete", index: this.selected })),
      fill: button("fill", "Snap & fill gaps", "snap every time to the segment grid and fill gaps with idle shots",
        () => this.apply({ type: "fill" })),
      raw: button("raw", "{ } JSON", "show the schedule as JSON (paste a schedule here)", () => this.toggleRaw()),
      usePlanner: button("use-planner", "Use planner's version",
        "drop your edits: the node passes the planner's schedule through again", () => this.usePlanner()),
      undo: button("undo", "Restore my edits", "bring back the edits you just dropped", () => this.undo()),
    };
    const b = this.buttons;
    this.tips = Object.fromEntries(Object.entries(b).map(([k, node]) => [k, node.title]));
    this.toolbar = el(doc, "div", { className: "ohs-toolbar" }, [
      this.badge, b.add, b.split, b.merge, b.delete, b.fill,
      el(doc, "span", { className: "ohs-spacer" }), b.raw, b.undo, b.usePlanner,
    ]);
    this.timeline = el(doc, "div", { className: "ohs-timeline", title: "shots against the audio; lines = segment boundaries" });
    this.scaleStart = el(doc, "span", { text: "0 s" });
    this.scaleInfo = el(doc, "span");
    this.scaleEnd = el(doc, "span");
    this.scale = el(doc, "div", { className: "ohs-scale" }, [this.scaleStart, this.scaleInfo, this.scaleEnd]);
    this.note = el(doc, "div", { className: "ohs-note" });
    this.issues = el(doc, "ul", { className: "ohs-issues" });
    this.empty = el(doc, "div", { className: "ohs-empty" });
    this.tbody = el(doc, "tbody");
    const head = el(doc, "tr", {}, [
      el(doc, "th", { text: "#", style: { width: "26px" } }),
      el(doc, "th", { text: "start s", style: { width: "58px" } }),
      el(doc, "th", { text: "end s", style: { width: "58px" } }),
      el(doc, "th", { text: "speak", title: "speaking (unchecked: listening / pause)", style: { width: "40px" } }),
      ...TEXT_COLUMNS.map((c) => el(doc, "th", { text: c.label, style: c.multiline ? { width: "32%" } : {} })),
    ]);
    this.table = el(doc, "table", { className: "ohs-table" }, [el(doc, "thead", {}, [head]), this.tbody]);
    this.tableWrap = el(doc, "div", { className: "ohs-table-wrap" }, [this.table]);
    this.raw = el(doc, "textarea", {
      className: "ohs-raw", spellcheck: false,
      placeholder: "Paste a schedule (JSON). Empty = use the planner's schedule.",
      oninput: () => this.setRawText(this.raw.value),
    });
    for (const node of [this.toolbar, this.timeline, this.scale, this.note, this.issues, this.empty, this.tableWrap, this.raw]) {
      this.element.appendChild(node);
    }
  }

  /** Rebuild everything (table included), keeping the focused cell focused. */
  render() {
    const focus = this.focusedCell();
    this.view = editorView(this.state, this.selected);
    this.selected = this.view.selected;
    this.renderTable();
    this.renderChrome(true);
    if (this.showRaw && this.raw.value !== this.view.text) this.raw.value = this.view.text;
    if (focus) this.restoreFocus(focus);
  }

  /** Everything but the table's cells: toolbar, timeline, messages, row decorations. */
  renderChrome(fresh = false) {
    if (!fresh) {
      this.view = editorView(this.state, this.selected);
      this.selected = this.view.selected;
    }
    const v = this.view;
    const hasTable = !!(v.schedule && v.rows.length);
    this.badge.textContent = { empty: "no schedule", planner: "planner's schedule", edited: "edited" }[v.mode];
    this.badge.className = `ohs-badge ohs-mode-${v.mode}`;
    this.badge.title = {
      empty: "nothing to show yet",
      planner: "the planner's schedule from the last run; edit it to make it yours",
      edited: v.plannerDiffers ? "your edits (they differ from the planner's latest schedule)" : "your edits",
    }[v.mode];
    for (const key of ["add", "split", "merge", "delete", "fill"]) {
      const a = v.actions[key];
      const off = !a.ok || this.showRaw;
      this.buttons[key].disabled = off;
      this.buttons[key].title = off && a.why ? a.why : this.tips[key];
    }
    this.buttons.raw.className = `ohs-btn${this.showRaw ? " ohs-on" : ""}`;
    this.buttons.usePlanner.hidden = !v.canUsePlanner;
    this.buttons.undo.hidden = !v.canUndo;

    this.renderTimeline();
    this.note.textContent = this.message ? this.message.text : "";
    this.note.className = `ohs-note${this.message && this.message.error ? " ohs-error" : ""}`;
    this.note.hidden = !this.message;

    clear(this.issues);
    for (const it of [...v.errors, ...v.warnings]) {
      const li = el(this.doc, "li", {
        className: `ohs-${it.severity}`, text: it.message,
        title: it.shot !== null ? `select shot ${it.shot}` : "",
        onclick: () => { if (it.shot !== null && it.shot < v.rows.length) this.select(it.shot, { scroll: true }); },
      });
      this.issues.appendChild(li);
    }
    this.issues.hidden = !(v.errors.length || v.warnings.length);

    this.empty.hidden = this.showRaw || hasTable;
    this.empty.textContent = v.mode === "empty"
      ? "No schedule yet. Run the workflow to see the planner's schedule here and edit it, " +
        "or paste one in the { } JSON view."
      : v.parseError ? "The schedule is not valid JSON: fix it in the { } JSON view, or use the planner's version."
        : "This schedule cannot be shown as a table: see the messages above, or fix it in the { } JSON view.";
    this.tableWrap.hidden = this.showRaw || !hasTable;
    this.raw.hidden = !this.showRaw;
    this.decorateRows();
  }

  renderTimeline() {
    const v = this.view;
    const doc = this.doc;
    clear(this.timeline);
    const g = v.timeline;
    this.timeline.hidden = !(g.scale > 0);
    this.scale.hidden = this.timeline.hidden;
    if (this.timeline.hidden) return;
    const badShots = new Set(v.errors.filter((e) => e.shot !== null).map((e) => e.shot));
    for (const s of g.shots) {
      const cls = ["ohs-block"];
      if (s.speaking) cls.push("ohs-speaking");
      if (s.index === this.selected) cls.push("ohs-selected");
      if (badShots.has(s.index)) cls.push("ohs-bad");
      this.timeline.appendChild(el(doc, "div", {
        className: cls.join(" "),
        text: `${s.index} ${s.label}`,
        title: `shot ${s.index}: ${formatSeconds(s.start)}–${formatSeconds(s.end)} s, ` +
          `${s.speaking ? "speaking" : "not speaking"}\n${s.label}`,
        dataset: { index: String(s.index) },
        style: { left: `${s.left}%`, width: `${s.width}%` },
        onclick: () => this.select(s.index, { scroll: true }),
      }));
    }
    for (const t of g.ticks) {
      if (t.index === 0) continue;
      this.timeline.appendChild(el(doc, "div", { className: "ohs-tick", style: { left: `${t.left}%` } }));
    }
    if (g.audioEnd !== null && g.audioEnd < 99.999) {
      this.timeline.appendChild(el(doc, "div", {
        className: "ohs-audio-end", title: "end of the audio", style: { left: `${g.audioEnd}%` },
      }));
    }
    const sched = v.schedule || {};
    this.scaleEnd.textContent = `${formatSeconds(g.scale)} s`;
    this.scaleInfo.textContent = v.grid
      ? `${v.grid.segments.length} segment${v.grid.segments.length === 1 ? "" : "s"} · ${formatSeconds(v.grid.fps)} fps · ` +
        `audio ${formatSeconds(sched.duration)} s`
      : typeof sched.duration === "number" ? `audio ${formatSeconds(sched.duration)} s` : "";
  }

  renderTable() {
    const doc = this.doc;
    clear(this.tbody);
    this.inputs = new Map();
    this.rowEls = [];
    const v = this.view;
    if (!v.schedule) return;
    for (const row of v.rows) {
      const i = row.index;
      const cells = [el(doc, "td", { className: "ohs-num", text: String(i) })];
      for (const edge of ["start", "end"]) {
        // The video's first and last instants are fixed while the shots tile the grid.
        const fixed = v.tiled && ((edge === "start" && i === 0) || (edge === "end" && i === v.rows.length - 1));
        const seg = edge === "start" ? row.startSegment : row.endSegment;
        const input = el(doc, "input", {
          type: "text", inputMode: "decimal", className: "ohs-time",
          value: formatTime(row[edge]),
          title: `${formatSeconds(row[edge])} s${seg !== null ? ` (segment boundary ${seg})` : ""}; ` +
            "times snap to segment boundaries",
          readOnly: fixed, dataset: { index: String(i), field: edge },
          onchange: (e) => this.apply({ type: "time", index: i, field: edge, value: e.target.value }),
          onkeydown: (e) => { if (e.key === "Enter" && e.target.blur) e.target.blur(); },
        });
        this.inputs.set(`${i}:${edge}`, input);
        cells.push(el(doc, "td", {}, [input]));
      }
      const speak = el(doc, "input", {
        type: "checkbox", checked: row.speaking, title: "speaking", dataset: { index: String(i), field: "speaking" },
        onchange: (e) => this.apply({ type: "field", index: i, field: "speaking", value: !!e.target.checked }, { rerender: false }),
      });
      this.inputs.set(`${i}:speaking`, speak);
      cells.push(el(doc, "td", { style: { textAlign: "center" } }, [speak]));
      for (const c of TEXT_COLUMNS) {
        const input = el(doc, c.multiline ? "textarea" : "input", {
          type: c.multiline ? undefined : "text", value: row[c.field], placeholder: c.placeholder,
          rows: c.multiline ? 1 : undefined, spellcheck: false,
          dataset: { index: String(i), field: c.field },
          oninput: (e) => this.apply({ type: "field", index: i, field: c.field, value: e.target.value }, { rerender: false }),
        });
        this.inputs.set(`${i}:${c.field}`, input);
        cells.push(el(doc, "td", {}, [input]));
      }
      const tr = el(doc, "tr", { className: "ohs-row", dataset: { index: String(i) } }, cells);
      tr.addEventListener("focusin", () => { if (this.selected !== i) this.select(i); });
      tr.addEventListener("mousedown", () => { if (this.selected !== i) this.select(i); });
      const msgCell = el(doc, "td", { colSpan: 4 + TEXT_COLUMNS.length });
      const msg = el(doc, "tr", { className: "ohs-msg" }, [msgCell]);
      this.tbody.appendChild(tr);
      this.tbody.appendChild(msg);
      this.rowEls.push({ tr, msg, msgCell });
    }
  }

  /** Selection and validation marks on the existing rows (no rebuild, so typing keeps focus). */
  decorateRows() {
    const v = this.view;
    if (!this.rowEls || this.rowEls.length !== v.rows.length) return;
    v.rows.forEach((row, i) => {
      const { tr, msg, msgCell } = this.rowEls[i];
      tr.className = `ohs-row${i === this.selected ? " ohs-selected" : ""}`;
      for (const f of ["start", "end", "speaking", ...TEXT_COLUMNS.map((c) => c.field)]) {
        const input = this.inputs.get(`${i}:${f}`);
        if (!input) continue;
        const it = row.fieldIssues[f];
        input.classList.toggle("ohs-invalid", !!it && it.severity === "error");
        input.classList.toggle("ohs-warn", !!it && it.severity === "warning");
        if (f !== "start" && f !== "end") input.title = it ? it.message : "";
      }
      const errors = row.issues.filter((it) => it.severity === "error");
      const shown = errors.length ? errors : row.issues;
      msgCell.textContent = shown.map((it) => it.message).join(" · ");
      msg.className = `ohs-msg${errors.length ? "" : " ohs-warning"}`;
      msg.hidden = !shown.length;
    });
  }

  focusedCell() {
    const active = this.doc.activeElement;
    if (!active || !active.dataset || active.dataset.field === undefined || !this.element.contains(active)) return null;
    let selection = null;
    try {
      selection = [active.selectionStart, active.selectionEnd];
    } catch {
      selection = null;
    }
    return { key: `${active.dataset.index}:${active.dataset.field}`, selection };
  }

  restoreFocus({ key, selection }) {
    const input = this.inputs.get(key);
    if (!input || !input.focus) return;
    input.focus();
    if (selection && selection[0] !== null && selection[0] !== undefined && input.setSelectionRange) {
      try {
        input.setSelectionRange(selection[0], selection[1]);
      } catch {
        /* checkboxes have no selection */
      }
    }
  }

  destroy() {
    this.onChange = null;
    if (this.element.parentNode) this.element.parentNode.removeChild(this.element);
  }
}
