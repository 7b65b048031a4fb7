// How the schedule editor plugs into ComfyUI's frontend (1.35.x): the extension object and the
// DOM widget that owns the OmniHumanScheduleEditor node's `schedule_json` input. It takes `app`
// as an argument (schedule_editor.js passes the real one), so it can be tested without a browser.
//
// Contract with the Python node:
//   input   `schedule_json`: STRING (multiline, default ""); its value is the artist's edited schedule as
//           JSON text, "" meaning "no edits: pass the planner's schedule through". The extension sets
//           the input's {"widgetType": "OMNIHUMAN_SCHEDULE_EDITOR"} option before the node type is
//           registered (the Python side may declare it too), so the frontend builds this widget instead
//           of a text box; if a text box is made anyway, it is replaced in place when the node is created.
//   ui      after a run, {"schedule": [json], "planner_schedule": [json]} (JSON text or objects):
//           the node's output schedule and the incoming planner's schedule.

import { ScheduleEditor } from "./schedule_widget.js";

export const EXTENSION_NAME = "OmniHuman.ScheduleEditor";
export const NODE_TYPE = "OmniHumanScheduleEditor";
export const INPUT_NAME = "schedule_json";
// Not "OMNIHUMAN_SCHEDULE": that is the schedule's socket type, and a custom widget registered under
// a socket type's name turns every input of that type into this widget.
export const WIDGET_TYPE = "OMNIHUMAN_SCHEDULE_EDITOR";
export const MIN_WIDTH = 720;
export const MIN_HEIGHT = 300; // the widget's own minimum
export const NEW_NODE_SIZE = Object.freeze([760, 560]); // a new node shows about ten shots

export function isScheduleEditorNode(node) {
  if (!node) return false;
  return node.comfyClass === NODE_TYPE || node.constructor?.comfyClass === NODE_TYPE || node.type === NODE_TYPE;
}

function markDirty(app, node) {
  node.setDirtyCanvas?.(true, true);
  app?.graph?.setDirtyCanvas?.(true, true);
}

/**
 * Give `node` the schedule editor widget for input `name` (idempotent). A default widget with the
 * same name (the STRING text box) is replaced at the same position, so widgets_values of saved
 * workflows keep lining up, and the input socket stays bound to the widget.
 */
export function addScheduleWidget(node, app, name = INPUT_NAME) {
  node.widgets ??= [];
  const existing = node.widgets.find((w) => w && w.name === name);
  if (existing && existing.type === WIDGET_TYPE && existing.editor) return existing;

  let index = -1;
  let value = "";
  const slot = node.inputs?.find((inp) => inp && inp.name === name);
  const slotWidget = slot?.widget;
  if (existing) {
    index = node.widgets.indexOf(existing);
    if (typeof existing.value === "string") value = existing.value;
    if (typeof node.removeWidget === "function") node.removeWidget(existing);
    else {
      existing.onRemove?.();
      node.widgets.splice(index, 1);
    }
    // The frontend registers a DOM widget again when its node joins the graph (onAdded, chained
    // when the widget was made); unregister the removed text box after that, or it stays on screen.
    const onAdded = node.onAdded;
    node.onAdded = function () {
      const r = onAdded?.apply(this, arguments);
      existing.onRemove?.();
      return r;
    };
  }

  const editor = new ScheduleEditor({ value });
  const widget = node.addDOMWidget(name, WIDGET_TYPE, editor.element, {
    getValue: () => editor.getValue(),
    setValue: (v) => editor.setValue(v),
    getMinHeight: () => MIN_HEIGHT,
    hideOnZoom: true,
  });
  widget.editor = editor;
  editor.onChange = (v) => {
    widget.callback?.(v);
    markDirty(app, node);
  };

  if (index >= 0) {
    const at = node.widgets.indexOf(widget);
    if (at >= 0 && at !== index) {
      node.widgets.splice(at, 1);
      node.widgets.splice(index, 0, widget);
    }
  }
  if (slot) {
    // removeWidget() unbinds the socket from the widget; bind it to ours (same name).
    slot.widget = slotWidget || { name };
    if ("_widget" in slot) slot._widget = widget;
  }
  return widget;
}

/** Forward the node's ui message (after a run) to the editor, keeping any earlier handler. */
export function hookExecuted(node) {
  if (node.__omnihumanScheduleHooked) return;
  node.__omnihumanScheduleHooked = true;
  const previous = node.onExecuted;
  node.onExecuted = function (message) {
    const r = previous?.apply(this, arguments);
    const w = this.widgets?.find((x) => x && x.type === WIDGET_TYPE && x.editor);
    w?.editor.onExecuted(message);
    return r;
  };
}

function ensureSize(node) {
  if (!node.size || node.size.length !== 2) return;
  const want = node.computeSize ? node.computeSize() : [0, 0];
  const w = Math.max(node.size[0], NEW_NODE_SIZE[0], want[0] || 0);
  const h = Math.max(node.size[1], NEW_NODE_SIZE[1], want[1] || 0);
  if (w !== node.size[0] || h !== node.size[1]) {
    if (node.setSize) node.setSize([w, h]);
    else {
      node.size[0] = w;
      node.size[1] = h;
    }
  }
}

/**
 * Ask the frontend to build our widget for the node's `schedule_json` STRING input instead of a
 * text box (the input spec's `widgetType` option), so no text box is made and then replaced.
 */
export function useScheduleWidgetType(nodeData) {
  if (!nodeData || nodeData.name !== NODE_TYPE) return false;
  let changed = false;
  for (const group of ["required", "optional"]) {
    const spec = nodeData.input?.[group]?.[INPUT_NAME];
    if (Array.isArray(spec) && spec[0] === "STRING") {
      spec[1] = { ...(spec[1] || {}), widgetType: WIDGET_TYPE };
      changed = true;
    }
  }
  return changed;
}

/** The extension object for app.registerExtension. */
export function scheduleEditorExtension(app) {
  return {
    name: EXTENSION_NAME,
    beforeRegisterNodeDef(nodeType, nodeData) {
      useScheduleWidgetType(nodeData);
    },
    // Used when the Python input declares {"widgetType": "OMNIHUMAN_SCHEDULE_EDITOR"}.
    getCustomWidgets() {
      return {
        [WIDGET_TYPE](node, inputName) {
          const widget = addScheduleWidget(node, app, inputName);
          return { widget, minWidth: MIN_WIDTH, minHeight: MIN_HEIGHT };
        },
      };
    },
    nodeCreated(node) {
      if (!isScheduleEditorNode(node)) return;
      addScheduleWidget(node, app, INPUT_NAME);
      hookExecuted(node);
      // A loaded workflow's saved size replaces this afterwards (configure runs after nodeCreated).
      ensureSize(node);
    },
  };
}
