// The delegation graph of a user's lineage: the user, the agents they delegated to and the
// sub-agents those delegated to, as an SVG node-link diagram, left to right. It draws the
// aggregates the user view keeps per agent path (views/lineage.js), never one element per
// action, so it costs the same for ten actions or a hundred thousand: each edge is labelled with
// the actions taken under it and, highlighted, how many were denied or escalated. Wide or deep
// crews are folded ("+ 12 more agents") past MAX_NODES.
//
// Every label is record data: it becomes SVG text through textContent (svg() below), never
// markup. Clicking a node (or Enter / Space on it) calls onPick(agent id) — the view keeps the
// choice in the URL and filters the tree by it; picking the user or the chosen agent again
// clears it.

import { printable } from "../dom.js";
import { count } from "./common.js";

const NS = "http://www.w3.org/2000/svg";
const NODE_W = 180, NODE_H = 30, COL_GAP = 150, ROW_H = 40, PAD = 10;
const MAX_CHILDREN = 8; // per parent; the rest fold into one "+ N more" node
const MAX_NODES = 48; // drawn in all

// svg builds an SVG element; attributes are set as attributes (no event handlers), strings
// become text through printable, like el() in dom.js.
export function svg(tag, attrs, ...children) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (/^on/i.test(k) || k === "style" || /href$/i.test(k)) throw new Error("svg: attribute not allowed: " + k);
    e.setAttribute(k, String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    e.appendChild(c instanceof Node ? c : document.createTextNode(printable(c)));
  }
  return e;
}

// clip shortens a label to n characters (the full text stays in the node's <title>).
function clip(s, n) {
  s = printable(s);
  return s.length > n ? s.slice(0, n - 1) + "…" : s;
}

// shortName is the last path segment of an agent id (SPIFFE ids are long and share a prefix).
function shortName(id) {
  const s = String(id);
  const i = s.replace(/\/+$/, "").lastIndexOf("/");
  return i >= 0 && i < s.length - 1 ? s.slice(i + 1) : s;
}

// select picks the nodes to draw, breadth first so every level gets its share of MAX_NODES:
// { item, kids: [...] } where item is an agent node or a fold { more, total, deny, escalate }.
function select(root) {
  const top = { item: root, kids: [] };
  const queue = [top];
  let budget = MAX_NODES - 1;
  while (queue.length) {
    const v = queue.shift();
    const agents = v.item.subagents || [];
    let shown = 0;
    for (const c of agents) {
      // Keep one node of the budget for the fold when more than one agent would remain.
      if (shown >= MAX_CHILDREN || budget <= (agents.length - shown > 1 ? 1 : 0)) break;
      const w = { item: c, kids: [] };
      v.kids.push(w);
      queue.push(w);
      shown++;
      budget--;
    }
    const rest = agents.slice(shown);
    if (rest.length) {
      const fold = { more: rest.length, total: 0, deny: 0, escalate: 0 };
      for (const c of rest) {
        fold.total += c.data.total;
        fold.deny += c.data.effects.deny;
        fold.escalate += c.data.effects.escalate;
      }
      v.kids.push({ item: fold, kids: [] });
      budget--;
    }
  }
  return top;
}

// layout gives each drawn node a column (depth) and a row: leaves take successive rows, a
// parent sits level with the middle of its children.
function layout(top) {
  let row = 0, depth = 0;
  const place = (v, d) => {
    v.col = d;
    depth = Math.max(depth, d);
    if (!v.kids.length) {
      v.row = row++;
      return;
    }
    for (const k of v.kids) place(k, d + 1);
    v.row = (v.kids[0].row + v.kids[v.kids.length - 1].row) / 2;
  };
  place(top, 0);
  return { rows: Math.max(1, row), cols: depth + 1 };
}

const xOf = (v) => PAD + v.col * (NODE_W + COL_GAP);
const yOf = (v) => PAD + v.row * ROW_H;

// DelegationGraph draws the graph into element; call update() when the aggregates change.
export class DelegationGraph {
  // opts: label (accessible name), onPick(agentId or "").
  constructor(opts) {
    this.opts = opts;
    this.focus = "";
    this.element = svg("svg", { class: "graph", role: "group", "aria-label": opts.label, id: "delegation-graph" });
    this.element.addEventListener("click", (e) => this.pick(e));
    this.element.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") { this.pick(e); e.preventDefault(); }
    });
  }

  pick(e) {
    const g = e.target.closest && e.target.closest("[data-agent]");
    if (!g) return;
    const id = g.dataset.agent;
    this.opts.onPick(id === this.focus ? "" : id);
  }

  // update redraws from the user node (views/lineage.js keeps data.total, data.effects and the
  // subagents list on the user and every agent node) with the chosen agent highlighted.
  update(root, focus) {
    this.focus = focus || "";
    const top = select(root);
    const { rows, cols } = layout(top);
    const width = PAD * 2 + cols * NODE_W + (cols - 1) * COL_GAP;
    const height = PAD * 2 + (rows - 1) * ROW_H + NODE_H;
    const e = this.element;
    while (e.firstChild) e.removeChild(e.firstChild);
    e.setAttribute("viewBox", "0 0 " + width + " " + height);
    e.setAttribute("width", String(width));
    e.setAttribute("height", String(height));
    const edges = svg("g", { class: "edges" });
    const nodes = svg("g", { class: "nodes" });
    const onPath = this.pathSet(top);
    const max = Math.max(1, root.data.total);
    const draw = (v, parent) => {
      const it = v.item;
      const x = xOf(v), y = yOf(v);
      const agent = it.kind === "agent" ? it.data.id : null;
      const dim = this.focus && !(agent && onPath.has(v)) && it.kind !== "user" ? " dim" : "";
      if (parent) {
        const total = it.more ? it.total : it.data.total;
        const deny = it.more ? it.deny : it.data.effects.deny;
        const esc = it.more ? it.escalate : it.data.effects.escalate;
        const x1 = xOf(parent) + NODE_W, y1 = yOf(parent) + NODE_H / 2, x2 = x, y2 = y + NODE_H / 2;
        const mx = (x1 + x2) / 2;
        const w = 1 + 5 * Math.sqrt(total / max);
        edges.append(svg("path", {
          class: "edge" + (deny ? " has-deny" : esc ? " has-escalate" : "") + dim,
          d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`, "stroke-width": w.toFixed(1),
        }));
        // The count above the edge's end, the denied and escalated below it.
        edges.append(svg("text", { class: "edge-label" + dim, x: x2 - 8, y: y2 - 5, "text-anchor": "end" }, count(total)));
        if (deny || esc) {
          const flags = svg("text", { class: "edge-label" + dim, x: x2 - 8, y: y2 + 13, "text-anchor": "end" });
          if (deny) flags.append(svg("tspan", { class: "deny" }, count(deny) + " deny"));
          if (esc) flags.append(svg("tspan", { class: "escalate" }, (deny ? " · " : "") + count(esc) + " esc."));
          edges.append(flags);
        }
      }
      if (it.more) {
        nodes.append(svg("g", { class: "node more", transform: `translate(${x},${y})` },
          svg("rect", { width: NODE_W, height: NODE_H, rx: 6 }),
          svg("text", { x: 10, y: 19 }, "+ " + count(it.more) + " more agents")));
        return;
      }
      const sel = agent && agent === this.focus;
      const name = it.kind === "user" ? it.data.id : shortName(it.data.id);
      const sub = it.kind === "user" ? "user · " + count(it.data.total) + " actions" :
        [...it.data.roles].join(", ") || "agent";
      const g = svg("g", {
        class: "node " + it.kind + (sel ? " selected" : "") + dim, transform: `translate(${x},${y})`,
        tabindex: "0", role: "button", "data-agent": agent || "", "aria-pressed": agent ? String(!!sel) : undefined,
        "aria-label": (it.kind === "user" ? "user " + printable(it.data.id) + ": show every agent" :
          "agent " + printable(it.data.id) + ", " + count(it.data.total) + " actions, " + count(it.data.effects.deny) +
          " denied, " + count(it.data.effects.escalate) + " escalated: " + (sel ? "show every agent" : "filter the tree to it")),
      },
      svg("title", {}, it.kind === "user" ? "user " + it.data.id : "agent " + it.data.id),
      svg("rect", { width: NODE_W, height: NODE_H, rx: it.kind === "user" ? 15 : 6 }),
      svg("text", { class: "name", x: 10, y: 13 }, clip(name, 26)),
      svg("text", { class: "sub", x: 10, y: 25 }, clip(sub, 30)));
      if (it.kind === "agent" && (it.data.effects.deny || it.data.effects.escalate)) {
        g.append(svg("circle", { class: it.data.effects.deny ? "dot deny" : "dot escalate", cx: NODE_W - 9, cy: 9, r: 4 }));
      }
      nodes.append(g);
      for (const k of v.kids) draw(k, v);
    };
    draw(top, null);
    e.append(edges, nodes);
  }

  // pathSet is the set of drawn nodes on the chosen agent's paths: its ancestors, itself and
  // its descendants, wherever it appears.
  pathSet(top) {
    const out = new Set();
    if (!this.focus) return out;
    const walk = (v, trail, inside) => {
      const hit = inside || (v.item.kind === "agent" && v.item.data.id === this.focus);
      if (hit) { for (const t of trail) out.add(t); out.add(v); }
      for (const k of v.kids) walk(k, [...trail, v], hit);
    };
    walk(top, [], false);
    return out;
  }
}
