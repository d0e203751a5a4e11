// A virtualized ARIA tree (WAI-ARIA APG tree view pattern): role=tree holding role=treeitem rows
// with aria-level, aria-setsize, aria-posinset and aria-expanded. The visible rows of the tree
// are flattened into one array and only those in the viewport (plus a margin) exist in the DOM,
// so tens of thousands of actions scroll smoothly. Focus stays on the tree element, which names
// the active row with aria-activedescendant; the keys are those of the pattern: Up/Down,
// Right (expand, then first child), Left (collapse, then parent), Home/End, PageUp/PageDown,
// Enter (activate) and Space (toggle).

import { el, clear } from "./dom.js";

const ROW = 28; // px; must match .tree-row height in app.css
const OVERSCAN = 10;
let seq = 0;

// node makes a tree node: kind "user" | "agent" | "action" | ..., key (stable across pages),
// data, children (undefined for a leaf).
export function node(kind, key, data, children) {
  return { kind, key, data, children, expanded: false, parent: null, level: 1, domId: "tn-" + (++seq) };
}

export class Tree {
  // opts: label, renderRow(node, rowElement), onActivate(node), onChange(tree) (after a
  // selection or expansion changes, to put them in the URL).
  constructor(opts) {
    this.opts = opts;
    this.roots = [];
    this.rows = [];
    this.active = -1;
    this.scroller = el("div", { class: "tree", role: "tree", tabindex: "0", "aria-label": opts.label });
    this.spacer = el("div", { class: "tree-spacer", role: "none" });
    this.window = el("div", { class: "tree-window", role: "none" });
    this.spacer.appendChild(this.window);
    this.scroller.appendChild(this.spacer);
    this.scroller.addEventListener("scroll", () => this.schedule());
    this.scroller.addEventListener("keydown", (e) => this.key(e));
    this.scroller.addEventListener("click", (e) => this.click(e));
    this.scroller.addEventListener("focus", () => { if (this.active < 0 && this.rows.length) this.focusRow(0); });
    this.byDomId = new Map();
  }

  get element() { return this.scroller; }

  setRoots(roots) {
    this.roots = roots;
    this.byDomId.clear();
    const walk = (list, parent, level) => {
      for (const n of list) {
        n.parent = parent;
        n.level = level;
        this.byDomId.set(n.domId, n);
        if (n.children) walk(n.children, n, level + 1);
      }
    };
    walk(roots, null, 1);
    this.flatten();
  }

  // flatten recomputes the visible rows, keeping the active node active if still visible.
  flatten() {
    const activeNode = this.rows[this.active];
    const rows = [];
    const walk = (list) => {
      for (let i = 0; i < list.length; i++) {
        const n = list[i];
        n.setsize = list.length;
        n.posinset = i + 1;
        rows.push(n);
        if (n.children && n.expanded) walk(n.children);
      }
    };
    walk(this.roots);
    rows.forEach((n, i) => { n.row = i; });
    this.rows = rows;
    this.active = activeNode && rows[activeNode.row] === activeNode ? activeNode.row : Math.min(this.active, rows.length - 1);
    this.spacer.style.height = rows.length * ROW + "px";
    this.scroller.dataset.rows = String(rows.length);
    this.render();
  }

  // find returns the node with this key, or null.
  find(pred) {
    const stack = [...this.roots];
    while (stack.length) {
      const n = stack.pop();
      if (pred(n)) return n;
      if (n.children) for (let i = n.children.length - 1; i >= 0; i--) stack.push(n.children[i]); // no spread: 10k+ children
    }
    return null;
  }

  // reveal expands the ancestors of n and makes it the active row.
  reveal(n) {
    for (let p = n.parent; p; p = p.parent) p.expanded = true;
    this.flatten();
    this.focusRow(n.row, { silent: true });
  }

  schedule() {
    if (this.pending) return;
    this.pending = requestAnimationFrame(() => { this.pending = 0; this.render(); });
  }

  // render draws the rows in the viewport.
  render() {
    const top = this.scroller.scrollTop;
    const height = this.scroller.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / ROW) - OVERSCAN);
    const last = Math.min(this.rows.length, Math.ceil((top + height) / ROW) + OVERSCAN);
    this.window.style.transform = "translateY(" + first * ROW + "px)";
    clear(this.window);
    for (let i = first; i < last; i++) {
      const n = this.rows[i];
      const r = el("div", {
        id: n.domId, role: "treeitem", class: "tree-row lvl-" + Math.min(n.level, 8) + (i === this.active ? " active" : ""),
        "aria-level": n.level, "aria-setsize": n.setsize, "aria-posinset": n.posinset,
        "aria-selected": i === this.active ? "true" : "false", "data-kind": n.kind, "data-key": n.key,
      });
      if (n.children) {
        r.setAttribute("aria-expanded", n.expanded ? "true" : "false");
        r.appendChild(el("span", { class: "twisty", "aria-hidden": "true" }, n.expanded ? "▾" : "▸"));
      } else {
        r.appendChild(el("span", { class: "twisty", "aria-hidden": "true" }, ""));
      }
      this.opts.renderRow(n, r);
      this.window.appendChild(r);
    }
    const a = this.rows[this.active];
    if (a) this.scroller.setAttribute("aria-activedescendant", a.domId);
    else this.scroller.removeAttribute("aria-activedescendant");
  }

  // focusRow makes row i active and scrolls it into view.
  focusRow(i, { silent = false } = {}) {
    if (!this.rows.length) return;
    i = Math.max(0, Math.min(this.rows.length - 1, i));
    this.active = i;
    const top = i * ROW;
    const h = this.scroller.clientHeight || 600;
    if (top < this.scroller.scrollTop) this.scroller.scrollTop = top;
    else if (top + ROW > this.scroller.scrollTop + h) this.scroller.scrollTop = top + ROW - h;
    this.render();
    if (!silent && this.opts.onChange) this.opts.onChange(this);
  }

  get activeNode() { return this.rows[this.active] || null; }

  toggle(n, open = !n.expanded) {
    if (!n.children || n.expanded === open) return;
    n.expanded = open;
    this.flatten();
    if (this.opts.onChange) this.opts.onChange(this);
  }

  key(e) {
    const n = this.activeNode;
    const page = Math.max(1, Math.floor((this.scroller.clientHeight || 600) / ROW) - 1);
    switch (e.key) {
      case "ArrowDown": this.focusRow(this.active + 1); break;
      case "ArrowUp": this.focusRow(this.active - 1); break;
      case "Home": this.focusRow(0); break;
      case "End": this.focusRow(this.rows.length - 1); break;
      case "PageDown": this.focusRow(this.active + page); break;
      case "PageUp": this.focusRow(this.active - page); break;
      case "ArrowRight":
        if (!n || !n.children) break;
        if (!n.expanded) this.toggle(n, true);
        else if (n.children.length) this.focusRow(this.active + 1);
        break;
      case "ArrowLeft":
        if (!n) break;
        if (n.children && n.expanded) this.toggle(n, false);
        else if (n.parent) this.focusRow(n.parent.row);
        break;
      case "Enter":
        if (n && this.opts.onActivate) this.opts.onActivate(n);
        else if (n) this.toggle(n);
        break;
      case " ":
        if (n && n.children) this.toggle(n);
        break;
      default:
        return;
    }
    e.preventDefault();
  }

  click(e) {
    if (e.target.closest("a")) return; // links navigate on their own
    const r = e.target.closest("[role=treeitem]");
    if (!r) return;
    const n = this.byDomId.get(r.id);
    if (!n) return;
    this.scroller.focus({ preventScroll: true });
    this.focusRow(n.row);
    if (n.children && (e.target.classList.contains("twisty") || e.detail >= 2)) this.toggle(n);
  }
}
