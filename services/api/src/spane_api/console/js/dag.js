// The DAG of a definition drawn as SVG: layered left to right (a node's layer is its longest path from an entry),
// nodes ordered in their layer by the mean position of their parents, edges as curves; coloured by node status.
import { h, svg } from "./dom.js";

const W = 150, H = 46, GAP_X = 60, GAP_Y = 18, PAD = 12, MAX_DRAWN = 400;

export function edgesOf(definition) {
  const ids = new Set(definition.nodes.map((n) => n.id));
  const seen = new Set();
  const edges = [];
  const add = (from, to) => {
    const key = `${from}\u0000${to}`;
    if (ids.has(from) && ids.has(to) && !seen.has(key)) { seen.add(key); edges.push([from, to]); }
  };
  for (const n of definition.nodes) {
    for (const o of n.outputs || []) add(n.id, o);
    for (const i of n.inputs || []) add(i, n.id);
  }
  return edges;
}

export function parentsOf(definition) {
  const parents = new Map(definition.nodes.map((n) => [n.id, []]));
  for (const [from, to] of edgesOf(definition)) parents.get(to).push(from);
  return parents;
}

function layout(definition) {
  const parents = parentsOf(definition);
  const children = new Map(definition.nodes.map((n) => [n.id, []]));
  for (const [from, to] of edgesOf(definition)) children.get(from).push(to);
  const layer = new Map();
  const indegree = new Map([...parents].map(([id, ps]) => [id, ps.length]));
  const ready = definition.nodes.filter((n) => indegree.get(n.id) === 0).map((n) => n.id);
  ready.forEach((id) => layer.set(id, 0));
  while (ready.length) {
    const id = ready.shift();
    for (const c of children.get(id)) {
      layer.set(c, Math.max(layer.get(c) || 0, layer.get(id) + 1));
      indegree.set(c, indegree.get(c) - 1);
      if (indegree.get(c) === 0) ready.push(c);
    }
  }
  const layers = [];
  for (const n of definition.nodes) {
    const l = layer.get(n.id) || 0;
    (layers[l] = layers[l] || []).push(n.id);
  }
  const row = new Map();
  layers.forEach((ids, l) => {
    if (l > 0) {
      const mean = (id) => {
        const ps = parents.get(id);
        return ps.length ? ps.reduce((s, p) => s + (row.get(p) || 0), 0) / ps.length : 0;
      };
      ids.sort((a, b) => mean(a) - mean(b));
    }
    ids.forEach((id, i) => row.set(id, i));
  });
  const tallest = Math.max(...layers.map((ids) => ids.length));
  const position = new Map();
  layers.forEach((ids, l) => {
    const offset = ((tallest - ids.length) * (H + GAP_Y)) / 2;
    ids.forEach((id, i) => position.set(id, { x: PAD + l * (W + GAP_X), y: PAD + offset + i * (H + GAP_Y) }));
  });
  return { position, width: PAD * 2 + layers.length * (W + GAP_X) - GAP_X, height: PAD * 2 + tallest * (H + GAP_Y) - GAP_Y };
}

const clip = (text, n) => (text.length > n ? `${text.slice(0, n - 1)}…` : text);

// statuses: {nodeId: status}; onSelect(nodeId) when a node is clicked or chosen with the keyboard.
export function drawDag(definition, statuses, onSelect) {
  if (definition.nodes.length > MAX_DRAWN) {
    return h("p", { class: "muted" }, `${definition.nodes.length} nodes: too many to draw; see the table below.`);
  }
  const { position, width, height } = layout(definition);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img",
    "aria-label": `Graph of ${definition.nodes.length} nodes` });
  root.append(svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5,
    markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, svg("path", { d: "M0,0 L10,5 L0,10 z", fill: "#8d96a7" }))));
  for (const [from, to] of edgesOf(definition)) {
    const a = position.get(from), b = position.get(to);
    const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2, mid = (x1 + x2) / 2;
    root.append(svg("path", { class: "edge", d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`,
      "marker-end": "url(#arrow)", "data-edge": `${from}->${to}` }));
  }
  for (const n of definition.nodes) {
    const p = position.get(n.id);
    const status = (statuses && statuses[n.id]) || "pending";
    const g = svg("g", { class: `node s-${status}`, "data-node": n.id, "data-status": status,
      transform: `translate(${p.x},${p.y})`, tabindex: 0, role: "button",
      "aria-label": `node ${n.id}, type ${n.type}${statuses ? `, ${status}` : ""}` },
      svg("title", {}, `${n.id} (${n.type})${statuses ? `: ${status}` : ""}`),
      svg("rect", { width: W, height: H, rx: 6 }),
      svg("text", { x: 8, y: 18 }, clip(n.id, 20)),
      svg("text", { x: 8, y: 36, class: "type" }, clip(statuses ? `${n.type} · ${status}` : n.type, 24)));
    if (onSelect) {
      g.addEventListener("click", () => onSelect(n.id));
      g.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); onSelect(n.id); } });
    }
    root.append(g);
  }
  return h("div", { class: "dag" }, root);
}
