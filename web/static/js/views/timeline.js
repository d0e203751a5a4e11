// The timeline of a user's lineage: the actions over the window as an SVG histogram, each
// bucket stacked by decision effect (allow, modify, escalate, deny). Buckets have a round width
// (a second up to a year) chosen so there are at most MAX_BUCKETS, aligned on UTC, so a bucket's
// bounds make a readable window. Clicking a bucket (or Enter / Space on it; Left / Right / Home
// / End move between buckets) calls onPick(from, to) with the bucket's [from, to), which the
// user view puts in the URL as its window.
//
// It counts into at most MAX_BUCKETS × 4 numbers and draws at most that many rectangles, however
// many actions there are. Labels are text nodes (svg() in views/graph.js), never markup.

import { svg } from "./graph.js";
import { count } from "./common.js";

const MAX_BUCKETS = 60;
const W = 1000, H = 150, LEFT = 46, RIGHT = 8, TOP = 8, BOTTOM = 24;
const EFFECTS = ["allow", "modify", "escalate", "deny"]; // bottom to top
const S = 1000, M = 60 * S, HR = 60 * M, D = 24 * HR;
const WIDTHS = [S, 2 * S, 5 * S, 10 * S, 15 * S, 30 * S, M, 2 * M, 5 * M, 10 * M, 15 * M, 30 * M,
  HR, 2 * HR, 3 * HR, 6 * HR, 12 * HR, D, 2 * D, 7 * D, 14 * D, 30 * D, 91 * D, 365 * D];

// parseTime reads an RFC 3339 time (record data, as written) to milliseconds, or NaN. Digits
// past milliseconds are dropped: Date.parse need not accept them.
export function parseTime(s) {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$/i.exec(String(s || ""));
  if (!m) return NaN;
  return Date.parse(m[1] + (m[2] ? m[2].slice(0, 4) : "") + m[3].toUpperCase());
}

// label formats a bucket start for the axis, as precise as the bucket width needs.
function label(ms, width) {
  const s = new Date(ms).toISOString();
  if (width >= D) return s.slice(0, 10);
  if (width >= M) return s.slice(5, 10) + " " + s.slice(11, 16);
  return s.slice(11, 19);
}

function span(ms) {
  for (const [n, unit] of [[365 * D, "year"], [D, "day"], [HR, "hour"], [M, "minute"], [S, "second"]]) {
    if (ms >= n && ms % n === 0) return ms / n + " " + unit + (ms / n > 1 ? "s" : "");
  }
  return ms + " ms";
}

// bucketize counts action times by effect: { start, width, n, counts: [n][4], totals, skipped }.
export function bucketize(actions, from, to) {
  const times = [], effects = [];
  let lo = Infinity, hi = -Infinity, skipped = 0;
  for (const a of actions) {
    const t = parseTime(a.time);
    if (!isFinite(t)) { skipped++; continue; }
    times.push(t);
    effects.push(Math.max(0, EFFECTS.indexOf(a.decision && a.decision.effect)));
    if (t < lo) lo = t;
    if (t > hi) hi = t;
  }
  const f = parseTime(from), u = parseTime(to);
  if (isFinite(f)) lo = Math.min(lo, f);
  if (isFinite(u)) hi = Math.max(hi, u - 1);
  if (!times.length && !(isFinite(f) && isFinite(u))) return null;
  let width = WIDTHS[WIDTHS.length - 1], start = Math.floor(lo / width) * width;
  for (const w of WIDTHS) {
    const s = Math.floor(lo / w) * w;
    if (Math.floor((hi - s) / w) + 1 <= MAX_BUCKETS) { width = w; start = s; break; }
  }
  const n = Math.floor((hi - start) / width) + 1;
  const counts = Array.from({ length: n }, () => [0, 0, 0, 0]);
  const totals = [0, 0, 0, 0];
  for (let i = 0; i < times.length; i++) {
    counts[Math.floor((times[i] - start) / width)][effects[i]]++;
    totals[effects[i]]++;
  }
  return { start, width, n, counts, totals, skipped, actions: times.length };
}

// Timeline draws the histogram; call update() when the actions change.
export class Timeline {
  // opts: label (accessible name), onPick(fromISO, toISO).
  constructor(opts) {
    this.opts = opts;
    this.focusIndex = 0;
    this.element = svg("svg", { class: "timeline", id: "timeline", role: "group", "aria-label": opts.label,
      viewBox: `0 0 ${W} ${H}`, width: W, height: H });
    this.element.addEventListener("click", (e) => {
      const g = e.target.closest && e.target.closest("[data-bucket]");
      if (g) this.pick(+g.dataset.bucket);
    });
    this.element.addEventListener("keydown", (e) => this.key(e));
    this.legend = null;
  }

  pick(i) {
    const b = this.b;
    if (!b || i < 0 || i >= b.n) return;
    const from = new Date(b.start + i * b.width).toISOString();
    const to = new Date(b.start + (i + 1) * b.width).toISOString();
    this.opts.onPick(from, to);
  }

  key(e) {
    const g = e.target.closest && e.target.closest("[data-bucket]");
    if (!g || !this.b) return;
    let i = +g.dataset.bucket;
    switch (e.key) {
      case "ArrowRight": i++; break;
      case "ArrowLeft": i--; break;
      case "Home": i = 0; break;
      case "End": i = this.b.n - 1; break;
      case "Enter": case " ": this.pick(i); e.preventDefault(); return;
      default: return;
    }
    e.preventDefault();
    this.move(Math.max(0, Math.min(this.b.n - 1, i)));
  }

  // move makes bucket i the one Tab reaches (roving tabindex) and focuses it.
  move(i) {
    const all = this.element.querySelectorAll("[data-bucket]");
    for (const g of all) g.setAttribute("tabindex", +g.dataset.bucket === i ? "0" : "-1");
    this.focusIndex = i;
    if (all[i]) all[i].focus();
  }

  // update redraws the histogram of actions (objects with time and decision.effect) over the
  // window [from, to) when the URL has one, else over the span of the actions.
  update(actions, from, to) {
    const b = (this.b = bucketize(actions, from, to));
    const e = this.element;
    while (e.firstChild) e.removeChild(e.firstChild);
    if (!b) {
      e.append(svg("text", { x: LEFT, y: H / 2, class: "empty" }, "No actions in the window."));
      return b;
    }
    const pw = W - LEFT - RIGHT, ph = H - TOP - BOTTOM, bw = pw / b.n;
    let max = 1;
    for (const c of b.counts) max = Math.max(max, c[0] + c[1] + c[2] + c[3]);
    e.append(
      svg("line", { class: "axis", x1: LEFT, y1: TOP + ph + 0.5, x2: W - RIGHT, y2: TOP + ph + 0.5 }),
      svg("text", { class: "tick", x: LEFT - 4, y: TOP + 9, "text-anchor": "end" }, count(max)),
      svg("text", { class: "tick", x: LEFT - 4, y: TOP + ph, "text-anchor": "end" }, "0"));
    const ticks = Math.min(b.n, 6);
    for (let k = 0; k < ticks; k++) {
      const i = Math.round((k * (b.n - 1)) / Math.max(1, ticks - 1));
      e.append(svg("text", { class: "tick", x: LEFT + i * bw + bw / 2, y: H - 6, "text-anchor": k === 0 ? "start" : k === ticks - 1 ? "end" : "middle" },
        label(b.start + i * b.width, b.width)));
    }
    if (this.focusIndex >= b.n) this.focusIndex = 0;
    const bars = svg("g", { class: "bars" });
    for (let i = 0; i < b.n; i++) {
      const c = b.counts[i], total = c[0] + c[1] + c[2] + c[3];
      const from = new Date(b.start + i * b.width).toISOString(), to = new Date(b.start + (i + 1) * b.width).toISOString();
      const what = count(total) + " actions" + (c[3] ? ", " + count(c[3]) + " deny" : "") + (c[2] ? ", " + count(c[2]) + " escalate" : "");
      const g = svg("g", { class: "bucket", "data-bucket": i, role: "button", tabindex: i === this.focusIndex ? "0" : "-1",
        "aria-label": from + " to " + to + ": " + what + ". Narrow the window to it." },
      svg("title", {}, from + " → " + to + "\n" + what),
      svg("rect", { class: "hit", x: LEFT + i * bw, y: TOP, width: bw, height: ph }));
      let y = TOP + ph;
      for (let k = 0; k < 4; k++) {
        if (!c[k]) continue;
        const h = Math.max(1, (c[k] / max) * ph);
        y -= h;
        g.append(svg("rect", { class: "seg " + EFFECTS[k], x: LEFT + i * bw + (bw > 4 ? 1 : 0), y, width: Math.max(1, bw - (bw > 4 ? 2 : 0)), height: h }));
      }
      bars.append(g);
    }
    e.append(bars);
    return b;
  }

  // describe is the legend line: bucket width and totals by effect.
  static describe(b) {
    if (!b) return "";
    return "buckets of " + span(b.width) + " · " + EFFECTS.map((k, i) => k + " " + count(b.totals[i])).join(" · ") +
      (b.skipped ? " · " + count(b.skipped) + " without a readable time" : "");
  }
}

export { EFFECTS };
