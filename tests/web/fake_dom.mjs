// A small DOM, enough to run the schedule editor widget under node --test without a browser:
// elements with children, attributes, dataset, classList, style, events (bubbling), focus, and
// a few queries (by class, tag, data attribute). Not a general DOM.

class ClassList {
  constructor(el) {
    this.el = el;
  }
  get list() {
    return this.el.className.split(/\s+/).filter(Boolean);
  }
  contains(c) {
    return this.list.includes(c);
  }
  add(...cs) {
    const l = this.list;
    for (const c of cs) if (!l.includes(c)) l.push(c);
    this.el.className = l.join(" ");
  }
  remove(...cs) {
    this.el.className = this.list.filter((c) => !cs.includes(c)).join(" ");
  }
  toggle(c, force) {
    const on = force === undefined ? !this.contains(c) : !!force;
    if (on) this.add(c);
    else this.remove(c);
    return on;
  }
}

export class FakeEvent {
  constructor(type, init = {}) {
    this.type = type;
    this.bubbles = init.bubbles ?? true;
    this.key = init.key;
    this.ctrlKey = !!init.ctrlKey;
    this.metaKey = !!init.metaKey;
    this.altKey = !!init.altKey;
    this.target = null;
    this.currentTarget = null;
    this.propagationStopped = false;
    this.defaultPrevented = false;
  }
  stopPropagation() {
    this.propagationStopped = true;
  }
  preventDefault() {
    this.defaultPrevented = true;
  }
}

const INPUT_PROPS = ["value", "checked", "disabled", "readOnly", "type", "placeholder", "rows", "spellcheck", "inputMode", "colSpan"];

export class FakeElement {
  constructor(doc, tag) {
    this.ownerDocument = doc;
    this.tagName = tag.toUpperCase();
    this.localName = tag.toLowerCase();
    this.children = [];
    this.parentNode = null;
    this.attributes = {};
    this.dataset = {};
    this.style = {};
    this.className = "";
    this.classList = new ClassList(this);
    this.listeners = {};
    this._text = "";
    this.id = "";
    this.title = "";
    this.hidden = false;
    for (const p of INPUT_PROPS) this[p] = p === "value" || p === "type" || p === "placeholder" ? "" : undefined;
    this.checked = false;
    this.disabled = false;
    this.readOnly = false;
    this.selectionStart = null;
    this.selectionEnd = null;
  }
  get firstChild() {
    return this.children[0] || null;
  }
  get textContent() {
    if (this.children.length) return this.children.map((c) => c.textContent).join("");
    return this._text;
  }
  set textContent(v) {
    for (const c of this.children) c.parentNode = null;
    this.children = [];
    this._text = String(v ?? "");
  }
  appendChild(child) {
    if (child.parentNode) child.parentNode.removeChild(child);
    child.parentNode = this;
    this.children.push(child);
    return child;
  }
  removeChild(child) {
    const i = this.children.indexOf(child);
    if (i < 0) throw new Error("not a child");
    this.children.splice(i, 1);
    child.parentNode = null;
    return child;
  }
  remove() {
    if (this.parentNode) this.parentNode.removeChild(this);
  }
  setAttribute(k, v) {
    this.attributes[k] = String(v);
  }
  getAttribute(k) {
    return this.attributes[k] ?? null;
  }
  contains(other) {
    for (let n = other; n; n = n.parentNode) if (n === this) return true;
    return false;
  }
  addEventListener(type, fn) {
    (this.listeners[type] ??= []).push(fn);
  }
  removeEventListener(type, fn) {
    this.listeners[type] = (this.listeners[type] || []).filter((f) => f !== fn);
  }
  dispatchEvent(event) {
    event.target ??= this;
    for (let n = this; n; n = event.bubbles ? n.parentNode : null) {
      event.currentTarget = n;
      for (const fn of [...(n.listeners[event.type] || [])]) fn.call(n, event);
      if (event.propagationStopped) break;
    }
    return !event.defaultPrevented;
  }
  focus() {
    const doc = this.ownerDocument;
    const prev = doc.activeElement;
    doc.activeElement = this;
    if (prev !== this) this.dispatchEvent(new FakeEvent("focusin"));
  }
  blur() {
    if (this.ownerDocument.activeElement === this) this.ownerDocument.activeElement = this.ownerDocument.body;
  }
  setSelectionRange(a, b) {
    this.selectionStart = a;
    this.selectionEnd = b;
  }
  scrollIntoView() {}
  click() {
    if (this.disabled) return;
    this.dispatchEvent(new FakeEvent("click"));
  }
  // queries -------------------------------------------------------------------------------
  *walk() {
    for (const c of this.children) {
      yield c;
      yield* c.walk();
    }
  }
  matches(sel) {
    return sel.split(/(?=[.[])/).every((part) => {
      if (part.startsWith(".")) return this.classList.contains(part.slice(1));
      const m = /^\[data-([\w-]+)(?:="([^"]*)")?\]$/.exec(part);
      if (m) {
        const key = m[1].replace(/-(\w)/g, (_, c) => c.toUpperCase());
        return m[2] === undefined ? key in this.dataset : this.dataset[key] === m[2];
      }
      return this.localName === part.toLowerCase();
    });
  }
  querySelectorAll(sel) {
    return [...this.walk()].filter((n) => n.matches(sel));
  }
  querySelector(sel) {
    return this.querySelectorAll(sel)[0] || null;
  }
  /** Visible = neither it nor an ancestor is hidden. */
  get visible() {
    for (let n = this; n; n = n.parentNode) if (n.hidden) return false;
    return true;
  }
}

export class FakeDocument {
  constructor() {
    this.head = new FakeElement(this, "head");
    this.body = new FakeElement(this, "body");
    this.activeElement = this.body;
  }
  createElement(tag) {
    return new FakeElement(this, tag);
  }
  getElementById(id) {
    for (const root of [this.head, this.body]) {
      for (const n of root.walk()) if (n.id === id) return n;
    }
    return null;
  }
}

/** Set an input's value and fire the event the widget listens to. */
export function type(input, value, eventType = "input") {
  input.value = value;
  input.dispatchEvent(new FakeEvent(eventType));
}

export function toggle(checkbox) {
  checkbox.checked = !checkbox.checked;
  checkbox.dispatchEvent(new FakeEvent("change"));
}
