// The widget's DOM behaviour and its ComfyUI wiring, on a fake DOM and a fake node that behave like
// frontend 1.35's (addDOMWidget with getValue/setValue, removeWidget, widgets_values by position,
// graphToPrompt taking widget.value under the widget's name).
import assert from "node:assert/strict";
import { beforeEach, describe, test } from "node:test";

import { serializeSchedule } from "../../web/js/schedule_logic.js";
import {
  EXTENSION_NAME, INPUT_NAME, NODE_TYPE, WIDGET_TYPE, addScheduleWidget, scheduleEditorExtension,
} from "../../web/js/schedule_extension.js";
import { STYLE_ID, ScheduleEditor } from "../../web/js/schedule_widget.js";
import { FakeDocument, FakeEvent, toggle, type } from "./fake_dom.mjs";
import { planned } from "./helpers.mjs";

let doc;
beforeEach(() => {
  doc = new FakeDocument();
  globalThis.document = doc;
});

const q = (editor, sel) => editor.element.querySelector(sel);
const qa = (editor, sel) => editor.element.querySelectorAll(sel);
const rows = (editor) => qa(editor, ".ohs-row");
const cell = (editor, i, field) => editor.element.querySelector(`[data-index="${i}"][data-field="${field}"]`);
const button = (editor, action) => editor.element.querySelector(`[data-action="${action}"]`);
const issues = (editor) => qa(editor, ".ohs-issues")[0].children.map((li) => li.textContent);
const plannerMessage = (s = planned()) => ({ schedule: [serializeSchedule(s)], planner_schedule: [serializeSchedule(s)] });

describe("ScheduleEditor (DOM)", () => {
  test("empty state: a message, no table, nothing sent, styles injected once", () => {
    const ed = new ScheduleEditor({ document: doc });
    new ScheduleEditor({ document: doc });
    assert.equal(ed.getValue(), "");
    assert.equal(doc.head.children.filter((n) => n.id === STYLE_ID).length, 1);
    const empty = q(ed, ".ohs-empty");
    assert.ok(empty.visible);
    assert.match(empty.textContent, /No schedule yet/);
    assert.equal(q(ed, ".ohs-table-wrap").hidden, true);
    assert.equal(q(ed, ".ohs-timeline").hidden, true);
    assert.equal(q(ed, ".ohs-badge").textContent, "no schedule");
    for (const a of ["add", "split", "merge", "delete", "fill"]) assert.equal(button(ed, a).disabled, true, a);
    assert.equal(button(ed, "use-planner").hidden, true);
    assert.deepEqual(issues(ed), []);
    // buttons on an empty editor do nothing harmful
    button(ed, "split").click();
    assert.equal(ed.getValue(), "");
  });

  test("setValue before the element is in any document (a workflow being loaded)", () => {
    const ed = new ScheduleEditor({ document: doc });
    assert.equal(ed.element.parentNode, null);
    const text = serializeSchedule(planned());
    ed.setValue(text);
    assert.equal(ed.getValue(), text);
    assert.equal(rows(ed).length, 3);
    assert.equal(q(ed, ".ohs-badge").textContent, "edited");
    assert.equal(cell(ed, 1, "prompt").value, "prompt 1");
    assert.equal(cell(ed, 1, "start").value, "5.04");
    assert.equal(cell(ed, 0, "speaking").checked, true);
    assert.equal(q(ed, ".ohs-empty").hidden, true);
  });

  test("after a run it shows the planner's schedule; typing makes it the artist's", () => {
    const changes = [];
    const ed = new ScheduleEditor({ document: doc, onChange: (v) => changes.push(v) });
    ed.onExecuted(plannerMessage());
    assert.equal(ed.getValue(), "");
    assert.equal(q(ed, ".ohs-badge").textContent, "planner's schedule");
    assert.equal(rows(ed).length, 3);
    assert.equal(qa(ed, ".ohs-block").length, 3);
    assert.equal(qa(ed, ".ohs-tick").length, 3);
    const input = cell(ed, 2, "prompt");
    input.focus();
    type(input, "she folds the letter");
    assert.equal(cell(ed, 2, "prompt"), input, "typing does not rebuild the row (focus stays)");
    assert.equal(JSON.parse(ed.getValue()).shots[2].prompt, "she folds the letter");
    assert.equal(changes.length, 1);
    assert.equal(q(ed, ".ohs-badge").textContent, "edited");
    assert.equal(button(ed, "use-planner").disabled, false);
    toggle(cell(ed, 1, "speaking"));
    assert.equal(JSON.parse(ed.getValue()).shots[1].speaking, true);
  });

  test("times snap to the grid and move the neighbour; the table is rebuilt and focus kept", () => {
    const ed = new ScheduleEditor({ document: doc });
    const s = planned({ duration: 30 });
    ed.setValue(serializeSchedule(s));
    button(ed, "merge").click(); // shot 0 now spans two segments
    assert.equal(rows(ed).length, s.shots.length - 1);
    const end = cell(ed, 0, "end");
    end.focus();
    type(end, "5.3", "change");
    const out = JSON.parse(ed.getValue());
    assert.equal(out.shots[0].end, 121 / 24);
    assert.equal(out.shots[1].start, 121 / 24);
    assert.equal(cell(ed, 0, "end").value, "5.04");
    assert.equal(doc.activeElement, cell(ed, 0, "end"));
    assert.equal(cell(ed, 0, "start").readOnly, true, "the first start is fixed");
    type(cell(ed, 0, "end"), "oops", "change");
    assert.match(q(ed, ".ohs-note").textContent, /"oops" is not a number of seconds/);
    assert.equal(q(ed, ".ohs-note").className, "ohs-note ohs-error");
  });

  test("add, split, merge, delete act on the selected shot", () => {
    const ed = new ScheduleEditor({ document: doc });
    ed.setValue(serializeSchedule(planned({ duration: 30 })));
    const n = rows(ed).length;
    assert.equal(button(ed, "split").disabled, true, "one-segment shots cannot be split");
    assert.match(button(ed, "split").title, /one segment/);
    rows(ed)[1].dispatchEvent(new FakeEvent("mousedown"));
    assert.ok(rows(ed)[1].classList.contains("ohs-selected"));
    assert.ok(qa(ed, ".ohs-block")[1].classList.contains("ohs-selected"));
    button(ed, "merge").click();
    assert.equal(rows(ed).length, n - 1);
    button(ed, "split").click();
    assert.equal(rows(ed).length, n);
    assert.equal(ed.selected, 2);
    rows(ed)[1].dispatchEvent(new FakeEvent("mousedown"));
    button(ed, "merge").click();
    button(ed, "add").click();
    const shots = JSON.parse(ed.getValue()).shots;
    assert.equal(shots.length, n);
    assert.equal(shots[2].prompt, "");
    button(ed, "delete").click();
    assert.equal(JSON.parse(ed.getValue()).shots.length, n - 1);
    qa(ed, ".ohs-block")[0].click();
    assert.equal(ed.selected, 0);
  });

  test("use the planner's version, then restore the edits", () => {
    const ed = new ScheduleEditor({ document: doc });
    ed.onExecuted(plannerMessage());
    type(cell(ed, 0, "action"), "waves");
    const edited = ed.getValue();
    button(ed, "use-planner").click();
    assert.equal(ed.getValue(), "");
    assert.equal(cell(ed, 0, "action").value, "action 0");
    assert.equal(q(ed, ".ohs-badge").textContent, "planner's schedule");
    assert.equal(button(ed, "undo").hidden, false);
    button(ed, "undo").click();
    assert.equal(ed.getValue(), edited);
    assert.equal(button(ed, "undo").hidden, true);
  });

  test("use the planner's version before any run clears the edits and says so", () => {
    const ed = new ScheduleEditor({ document: doc });
    ed.setValue(serializeSchedule(planned()));
    button(ed, "use-planner").click();
    assert.equal(ed.getValue(), "");
    assert.match(q(ed, ".ohs-note").textContent, /shows here after the next run/);
    assert.ok(q(ed, ".ohs-empty").visible);
  });

  test("validation messages show inline: in the list, under the row, on the field", () => {
    const s = planned();
    s.shots[1].speaking = "yes";
    const ed = new ScheduleEditor({ document: doc });
    ed.setValue(serializeSchedule(s));
    assert.deepEqual(issues(ed), ["schedule.shots[1].speaking: expected true or false, got a string"]);
    assert.ok(cell(ed, 1, "speaking").classList.contains("ohs-invalid"));
    const msgs = qa(ed, ".ohs-msg");
    assert.equal(msgs[1].hidden, false);
    assert.match(msgs[1].textContent, /speaking: expected true or false/);
    assert.equal(msgs[0].hidden, true);
    assert.ok(qa(ed, ".ohs-block")[1].classList.contains("ohs-bad"));
    q(ed, ".ohs-issues").children[0].click();
    assert.equal(ed.selected, 1);
    // fixing the field clears the marks without a rebuild
    const box = cell(ed, 1, "speaking");
    box.checked = true;
    box.dispatchEvent(new FakeEvent("change"));
    assert.deepEqual(issues(ed), []);
    assert.equal(cell(ed, 1, "speaking").classList.contains("ohs-invalid"), false);
  });

  test("end past the audio: the message names shot and field, the cell is marked", () => {
    const s = planned({ duration: 4.2 });
    s.shots[0].end = 7.5;
    const ed = new ScheduleEditor({ document: doc });
    ed.setValue(serializeSchedule(s));
    assert.deepEqual(issues(ed), ["shots[0].end: 7.5 s is past the schedule's duration (4.2 s)"]);
    assert.ok(cell(ed, 0, "end").classList.contains("ohs-invalid"));
    assert.equal(button(ed, "fill").disabled, true);
  });

  test("gaps: a warning, and 'Snap & fill gaps' repairs the schedule", () => {
    const s = planned({ duration: 30 });
    s.shots[2].start = s.shots[2].start + 1;
    const ed = new ScheduleEditor({ document: doc });
    ed.setValue(serializeSchedule(s));
    assert.ok(q(ed, ".ohs-issues").children.every((li) => li.className === "ohs-warning"));
    assert.equal(button(ed, "split").disabled, true);
    assert.equal(button(ed, "fill").disabled, false);
    button(ed, "fill").click();
    assert.deepEqual(issues(ed), []);
    assert.equal(button(ed, "fill").disabled, true);
  });

  test("raw JSON view: shows the text, sends what is typed, reports broken JSON", () => {
    const ed = new ScheduleEditor({ document: doc });
    ed.onExecuted(plannerMessage());
    button(ed, "raw").click();
    const raw = q(ed, ".ohs-raw");
    assert.equal(raw.hidden, false);
    assert.equal(q(ed, ".ohs-table-wrap").hidden, true);
    assert.deepEqual(JSON.parse(raw.value), planned());
    assert.equal(button(ed, "merge").disabled, true, "table actions are off in the JSON view");
    type(raw, '{"version": 1, "fps": 24,');
    assert.equal(ed.getValue(), '{"version": 1, "fps": 24,');
    assert.match(issues(ed)[0], /^schedule is not valid JSON \(line 1, column \d+/);
    assert.equal(raw.value, '{"version": 1, "fps": 24,', "the textarea is not rewritten while typing");
    const fixed = serializeSchedule(planned({ duration: 20 }));
    type(raw, fixed);
    button(ed, "raw").click();
    assert.equal(q(ed, ".ohs-raw").hidden, true);
    assert.equal(rows(ed).length, 5); // 20 s = 480 frames = 5 segments
    type(q(ed, ".ohs-raw"), "");
    assert.equal(ed.getValue(), "");
  });

  test("broken JSON loaded from a workflow: no table, a message, planner's version one click away", () => {
    const ed = new ScheduleEditor({ document: doc });
    ed.setValue("{nope");
    assert.equal(rows(ed).length, 0);
    assert.match(q(ed, ".ohs-empty").textContent, /not valid JSON/);
    assert.equal(button(ed, "use-planner").disabled, false);
  });

  test("odd shots render and refuse edits with a message instead of throwing", () => {
    const s = planned();
    s.shots[1] = "not a shot";
    const ed = new ScheduleEditor({ document: doc });
    ed.setValue(serializeSchedule(s));
    assert.equal(rows(ed).length, 3);
    assert.match(issues(ed)[0], /schedule\.shots\[1\]: expected an object, got a string/);
    type(cell(ed, 1, "prompt"), "x");
    assert.match(q(ed, ".ohs-note").textContent, /shots\[1\] is not an object/);
    assert.equal(JSON.parse(ed.getValue()).shots[1], "not a shot");
  });

  test("Delete/Backspace typed in a cell does not reach the canvas; shortcuts with Ctrl do", () => {
    const ed = new ScheduleEditor({ document: doc });
    ed.setValue(serializeSchedule(planned()));
    const parent = doc.createElement("div");
    parent.appendChild(ed.element);
    let reached = 0;
    parent.addEventListener("keydown", () => reached++);
    cell(ed, 0, "prompt").dispatchEvent(new FakeEvent("keydown", { key: "Delete" }));
    assert.equal(reached, 0);
    cell(ed, 0, "prompt").dispatchEvent(new FakeEvent("keydown", { key: "Enter", ctrlKey: true }));
    assert.equal(reached, 1);
  });
});

// ------------------------------------------------------------------------------ ComfyUI wiring

/** A node like the 1.35 frontend builds for a classic STRING multiline input (customtext). */
class FakeNode {
  constructor(type, { customWidget = null } = {}) {
    this.type = type;
    this.comfyClass = type;
    this.size = [400, 200];
    this.widgets = [];
    this.inputs = [];
    this.removed = [];
    this.addWidget("seed", 1);
    if (customWidget) {
      const { widget } = customWidget(this, INPUT_NAME, ["STRING", { multiline: true, widgetType: WIDGET_TYPE }]);
      this.inputs.push({ name: INPUT_NAME, type: "STRING", link: null, widget: { name: INPUT_NAME, config: 1 } });
      void widget;
    } else {
      // like the frontend's addWidget(): the DOM widget store registers it now and again in onAdded
      this.domStore = new Set();
      const textbox = { name: INPUT_NAME, type: "customtext", value: "",
        onRemove: () => { this.removed.push(INPUT_NAME); this.domStore.delete(textbox); } };
      this.domStore.add(textbox);
      this.onAdded = () => this.domStore.add(textbox);
      this.widgets.push(textbox);
      this.inputs.push({ name: INPUT_NAME, type: "STRING", link: null, widget: { name: INPUT_NAME, config: 1 }, _widget: textbox });
    }
    this.addWidget("tail", "x");
  }
  addWidget(name, value) {
    this.widgets.push({ name, type: "number", value });
  }
  addDOMWidget(name, type, element, options) {
    const widget = { name, type, element, options: { hideOnZoom: true, ...options }, callbackCalls: 0 };
    Object.defineProperty(widget, "value", {
      get() {
        return this.options.getValue?.() ?? "";
      },
      set(v) {
        this.options.setValue?.(v);
        this.callback?.(this.value);
      },
    });
    this.widgets.push(widget);
    return widget;
  }
  removeWidget(w) {
    const i = this.widgets.indexOf(w);
    if (i < 0) throw new Error("Widget not found on this node");
    for (const inp of this.inputs) if (inp._widget === w) { inp._widget = undefined; inp.widget = undefined; }
    w.onRemove?.();
    this.widgets.splice(i, 1);
  }
  computeSize() {
    return [300, 400];
  }
  setSize(s) {
    this.size = s;
  }
  setDirtyCanvas() {
    this.dirty = (this.dirty || 0) + 1;
  }
  configure(info) {
    let n = 0;
    for (const w of this.widgets) {
      if (w.serialize === false) continue;
      if (n >= info.widgets_values.length) break;
      w.value = info.widgets_values[n++];
    }
  }
  serialize() {
    return { widgets_values: this.widgets.map((w) => (w.serialize !== false ? w.value : null)) };
  }
  promptInputs() {
    const inputs = {};
    for (const w of this.widgets) if (w.name && w.options?.serialize !== false) inputs[w.name] = w.value;
    return inputs;
  }
}

const fakeApp = () => ({ graph: { setDirtyCanvas() {} }, registerExtension() {} });

describe("ComfyUI extension", () => {
  test("registers under a unique name and custom widget type", () => {
    const ext = scheduleEditorExtension(fakeApp());
    assert.equal(ext.name, EXTENSION_NAME);
    assert.deepEqual(Object.keys(ext.getCustomWidgets()), [WIDGET_TYPE]);
    // a custom widget named like a socket type would turn the schedule input socket into an editor
    assert.notEqual(WIDGET_TYPE, "OMNIHUMAN_SCHEDULE");
    assert.equal(NODE_TYPE, "OmniHumanScheduleEditor");
  });

  test("replaces the default STRING text box in place and keeps the socket bound", () => {
    const ext = scheduleEditorExtension(fakeApp());
    const node = new FakeNode(NODE_TYPE);
    ext.nodeCreated(node);
    assert.deepEqual(node.widgets.map((w) => w.name), ["seed", INPUT_NAME, "tail"]);
    const w = node.widgets[1];
    assert.equal(w.type, WIDGET_TYPE);
    assert.deepEqual(node.removed, [INPUT_NAME], "the old text box was removed (its DOM element too)");
    assert.deepEqual(node.inputs[0].widget, { name: INPUT_NAME, config: 1 }, "the socket keeps its widget binding");
    node.onAdded(); // the node joins the graph: the frontend re-registers the old text box...
    assert.equal(node.domStore.size, 0, "...and it is unregistered again, so it never shows");
    assert.ok(node.size[0] >= 700 && node.size[1] >= 500, "big enough for the table");
    assert.equal(w.options.getMinHeight() > 100, true);
    ext.nodeCreated(node);
    assert.equal(node.widgets.filter((x) => x.name === INPUT_NAME).length, 1, "idempotent");
  });

  test("built directly when the input declares widgetType OMNIHUMAN_SCHEDULE_EDITOR", () => {
    const app = fakeApp();
    const ext = scheduleEditorExtension(app);
    const node = new FakeNode(NODE_TYPE, { customWidget: ext.getCustomWidgets()[WIDGET_TYPE] });
    ext.nodeCreated(node);
    assert.deepEqual(node.widgets.map((w) => [w.name, w.type]),
      [["seed", "number"], [INPUT_NAME, WIDGET_TYPE], ["tail", "number"]]);
  });

  test("beforeRegisterNodeDef asks for our widget on the STRING input of our node only", () => {
    const ext = scheduleEditorExtension(fakeApp());
    const def = { name: NODE_TYPE, input: { required: { schedule: ["OMNIHUMAN_SCHEDULE"], [INPUT_NAME]: ["STRING", { multiline: true, default: "" }] } } };
    ext.beforeRegisterNodeDef(class {}, def);
    assert.deepEqual(def.input.required[INPUT_NAME], ["STRING", { multiline: true, default: "", widgetType: WIDGET_TYPE }]);
    assert.deepEqual(def.input.required.schedule, ["OMNIHUMAN_SCHEDULE"]);
    const opt = { name: NODE_TYPE, input: { optional: { [INPUT_NAME]: ["STRING"] } } };
    ext.beforeRegisterNodeDef(class {}, opt);
    assert.equal(opt.input.optional[INPUT_NAME][1].widgetType, WIDGET_TYPE);
    const other = { name: "CLIPTextEncode", input: { required: { [INPUT_NAME]: ["STRING", {}] } } };
    ext.beforeRegisterNodeDef(class {}, other);
    assert.deepEqual(other.input.required[INPUT_NAME], ["STRING", {}]);
    ext.beforeRegisterNodeDef(class {}, { name: NODE_TYPE }); // no inputs: no error
  });

  test("leaves other nodes alone", () => {
    const ext = scheduleEditorExtension(fakeApp());
    const node = new FakeNode("SomeOtherNode");
    ext.nodeCreated(node);
    assert.equal(node.widgets[1].type, "customtext");
    assert.equal(node.onExecuted, undefined);
  });

  test("workflow round trip: widgets_values load into the editor and save at the same position", () => {
    const ext = scheduleEditorExtension(fakeApp());
    const text = serializeSchedule(planned());
    const node = new FakeNode(NODE_TYPE);
    ext.nodeCreated(node);
    node.configure({ widgets_values: [42, text, "y"] }); // element not attached to any document
    assert.deepEqual(node.serialize().widgets_values, [42, text, "y"]);
    assert.equal(node.promptInputs()[INPUT_NAME], text, "sent with the prompt under the input's name");
    const ed = node.widgets[1].editor;
    assert.equal(ed.element.querySelectorAll(".ohs-row").length, 3);
    // an old workflow whose value is "" (no edits) shows the empty state
    const fresh = new FakeNode(NODE_TYPE);
    ext.nodeCreated(fresh);
    fresh.configure({ widgets_values: [1, "", "x"] });
    assert.equal(fresh.promptInputs()[INPUT_NAME], "");
    assert.ok(fresh.widgets[1].editor.element.querySelector(".ohs-empty").visible);
  });

  test("onExecuted reaches the editor and any earlier handler; edits are sent with the next prompt", () => {
    const ext = scheduleEditorExtension(fakeApp());
    const node = new FakeNode(NODE_TYPE);
    const seen = [];
    node.onExecuted = (m) => seen.push(m);
    ext.nodeCreated(node);
    const w = node.widgets[1];
    let callbacks = 0;
    w.callback = () => callbacks++;
    const msg = plannerMessage();
    node.onExecuted(msg);
    assert.deepEqual(seen, [msg]);
    assert.equal(node.promptInputs()[INPUT_NAME], "", "no edits: the planner's schedule passes through");
    const prompt = w.editor.element.querySelector('[data-index="1"][data-field="prompt"]');
    type(prompt, "edited in the widget");
    assert.equal(JSON.parse(node.promptInputs()[INPUT_NAME]).shots[1].prompt, "edited in the widget");
    assert.equal(callbacks, 1);
    assert.ok(node.dirty >= 1);
    node.onExecuted(msg); // the planner's cached result comes again: the edits stay
    assert.equal(JSON.parse(node.promptInputs()[INPUT_NAME]).shots[1].prompt, "edited in the widget");
  });

  test("a widget without getValue/setValue wiring would lose edits: ours round-trips through value", () => {
    const node = new FakeNode(NODE_TYPE);
    const w = addScheduleWidget(node, fakeApp());
    const text = serializeSchedule(planned({ duration: 20 }));
    w.value = text;
    assert.equal(w.value, text);
    w.value = null;
    assert.equal(w.value, "");
  });
});
