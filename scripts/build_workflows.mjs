// Build workflows in ComfyUI's real frontend and save them as the editor does.
// Usage: node scripts/build_workflows.mjs <comfy url> <specs.json> <result.json>
// (scripts/build_workflows.py writes the specs and post-processes the result.)
//
// For each spec: clear the graph, create every node with LiteGraph.createNode (so the frontend
// builds the widgets from the live node definitions), set widget values by name, connect sockets
// by name, stack nodes in columns from their real sizes, draw groups around their members, then
// take the frontend's saved-workflow JSON and its API-format prompt (graphToPrompt); finally load
// the saved JSON back and check that it serialises to the same graph.

import { readFileSync, writeFileSync } from "node:fs";
import { openComfy, graphToPrompt } from "./comfy_page.mjs";

const [url, specPath, outPath] = process.argv.slice(2);
if (!outPath) {
  console.error("usage: node scripts/build_workflows.mjs <comfy url> <specs.json> <result.json>");
  process.exit(2);
}
const specs = JSON.parse(readFileSync(specPath, "utf8"));
const types = [...new Set(specs.flatMap((s) => s.nodes.map((n) => n.type)))];
const { browser, page, errors } = await openComfy(url, { types });

/** Centre the graph in the canvas at a scale that shows all of it (rounded, so rebuilds are identical). */
async function frameGraph(page) {
  await page.evaluate(() => {
    const app = window.app;
    const boxes = [...app.graph.nodes.map((n) => [n.pos[0], n.pos[1] - 30, n.size[0], n.size[1] + 30]),
      ...app.graph.groups.map((g) => [g.pos[0], g.pos[1], g.size[0], g.size[1]])];
    const x0 = Math.min(...boxes.map((b) => b[0]));
    const y0 = Math.min(...boxes.map((b) => b[1]));
    const w = Math.max(...boxes.map((b) => b[0] + b[2])) - x0;
    const h = Math.max(...boxes.map((b) => b[1] + b[3])) - y0;
    const W = 1600;
    const H = 900; // a common window, below the top bar
    const scale = Math.round(Math.min(W / w, H / h) * 0.92 * 1000) / 1000;
    const ds = app.canvas.ds;
    ds.scale = scale;
    ds.offset[0] = Math.round((W / scale - w) / 2 - x0);
    ds.offset[1] = Math.round((H / scale - h) / 2 - y0);
    app.graph.setDirtyCanvas(true, true);
  });
}

const results = {};
try {
  for (const spec of specs) {
    const built = await page.evaluate((spec) => {
      const app = window.app;
      const LG = window.LiteGraph;
      app.graph.clear();
      const byKey = {};
      for (const n of spec.nodes) {
        const node = LG.createNode(n.type);
        if (!node) throw new Error(`${spec.name}: unknown node type ${n.type}`);
        if (n.title) node.title = n.title;
        if (n.color) node.color = n.color;
        if (n.bgcolor) node.bgcolor = n.bgcolor;
        app.graph.add(node);
        for (const [name, value] of Object.entries(n.widgets || {})) {
          const w = node.widgets?.find((x) => x.name === name);
          if (!w) throw new Error(`${spec.name}: ${n.type} has no widget ${name} (has ${node.widgets?.map((x) => x.name)})`);
          w.value = value;
        }
        const want = node.computeSize();
        const MIN_WIDTH = 270; // long titles ("VAE Decode") stay readable
        node.setSize([Math.max(n.width || MIN_WIDTH, want[0], node.size[0]), Math.max(n.height || 0, want[1], node.size[1])]);
        byKey[n.key] = node;
      }
      for (const [src, out, dst, inp] of spec.links) {
        const s = byKey[src];
        const d = byKey[dst];
        if (!s || !d) throw new Error(`${spec.name}: link ${src} -> ${dst}: unknown node key`);
        // An output by index, by name (RETURN_NAMES), or the first of that type.
        let oi = typeof out === "number" ? out : s.findOutputSlot(out);
        if (oi < 0) oi = s.outputs.findIndex((o) => o.type === out);
        const ii = d.findInputSlot(inp);
        if (oi < 0) throw new Error(`${spec.name}: ${s.type} has no output ${out}`);
        if (ii < 0) throw new Error(`${spec.name}: ${d.type} has no input ${inp}`);
        if (!s.connect(oi, d, ii)) throw new Error(`${spec.name}: could not connect ${s.type}.${out} -> ${d.type}.${inp}`);
      }
      // Layout: columns left to right, nodes stacked in spec order; a column is as wide as its widest node.
      const GAP_X = 60;
      const GAP_Y = 50;
      const TITLE = LG.NODE_TITLE_HEIGHT || 30;
      const columns = [...new Set(spec.nodes.map((n) => n.col))].sort((a, b) => a - b);
      let x = 0;
      for (const c of columns) {
        const members = spec.nodes.filter((n) => n.col === c);
        let y = 0;
        let width = 0;
        for (const n of members) {
          const node = byKey[n.key];
          y += n.gap_before || 0;
          node.pos = [x, y + TITLE];
          y += node.size[1] + TITLE + GAP_Y;
          width = Math.max(width, node.size[0]);
        }
        x += width + GAP_X;
      }
      for (const g of spec.groups || []) {
        const members = g.nodes.map((k) => byKey[k]);
        const group = new LG.LGraphGroup(g.title);
        if (g.color) group.color = g.color;
        app.graph.add(group);
        const pad = 20;
        const x0 = Math.min(...members.map((m) => m.pos[0])) - pad;
        const y0 = Math.min(...members.map((m) => m.pos[1] - TITLE)) - pad - 40;
        const x1 = Math.max(...members.map((m) => m.pos[0] + m.size[0])) + pad;
        const y1 = Math.max(...members.map((m) => m.pos[1] + m.size[1])) + pad;
        group.pos = [x0, y0];
        group.size = [x1 - x0, y1 - y0];
      }
      app.graph.setDirtyCanvas(true, true);
      return Object.fromEntries(Object.entries(byKey).map(([k, n]) => [k, n.id]));
    }, spec);
    await frameGraph(page); // the saved view (extra.ds) frames the whole graph
    const first = await graphToPrompt(page);
    // Round trip: what the editor saved must load and save again unchanged.
    const again = await page.evaluate(async (wf) => {
      await window.app.loadGraphData(wf, true, true, null);
      const p = await window.app.graphToPrompt();
      return { output: p.output, workflow: p.workflow };
    }, first.workflow);
    results[spec.name] = { ids: built, workflow: first.workflow, output: first.output, reloaded: again };
  }
} finally {
  await browser.close();
}
writeFileSync(outPath, JSON.stringify({ results, errors }, null, 1));
