// Browser test body (run by test_browser.py): in ComfyUI's real frontend, load workflow 2, point its
// LLM node at the test's fake endpoint, queue, edit a shot in the schedule editor widget, queue
// again, and report what the page saw. Screenshots of the graph and the widget go to SHOTS_DIR.
//
// Input (environment): COMFY_URL, WORKFLOW (path), LLM_URL, RESULT (path for the JSON report),
// SHOTS_DIR, EDIT_TEXT and EDIT_ACTION (shot 0's new prompt and action), CHEAP (JSON {widget name: value} set on every node that has that widget).

import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import path from "node:path";
import { openComfy, fitView } from "../../scripts/comfy_page.mjs";

const env = process.env;
const workflow = JSON.parse(readFileSync(env.WORKFLOW, "utf8"));
const cheap = JSON.parse(env.CHEAP || "{}");
const shotsDir = env.SHOTS_DIR;
mkdirSync(shotsDir, { recursive: true });
const report = { steps: [] };
const note = (s) => {
  report.steps.push(s);
  console.log(s);
};

const { browser, page, errors } = await openComfy(env.COMFY_URL, { width: 1600, height: 1000 });
try {
  await page.evaluate(async (wf) => {
    await window.app.loadGraphData(wf, true, true, "02_system2_full");
  }, workflow);
  report.loaded = await page.evaluate(({ llmUrl, cheap }) => {
    const app = window.app;
    const nodes = app.graph.nodes;
    const llm = nodes.find((n) => n.type === "OmniHumanLLM");
    const set = (node, name, value) => {
      const w = node.widgets.find((x) => x.name === name);
      if (!w) throw new Error(`${node.type} has no widget ${name}`);
      w.value = value;
      w.callback?.(value);
    };
    set(llm, "base_url", llmUrl);
    set(llm, "model", "fake");
    for (const node of nodes) for (const [k, v] of Object.entries(cheap)) if (node.widgets?.some((w) => w.name === k)) set(node, k, v);
    // Record every run's outcome, for waitRun below.
    window.__runs = [];
    app.api.addEventListener("execution_success", (e) => window.__runs.push({ ok: true, id: e.detail.prompt_id }));
    app.api.addEventListener("execution_error", (e) => window.__runs.push({ ok: false, id: e.detail.prompt_id, error: e.detail }));
    const editor = nodes.find((n) => n.type === "OmniHumanScheduleEditor");
    return { editorId: editor.id, llmId: llm.id, types: nodes.map((n) => n.type) };
  }, { llmUrl: env.LLM_URL, cheap });
  await fitView(page);

  async function run(label) {
    const before = await page.evaluate(() => window.__runs.length);
    const t0 = Date.now();
    // What the Run button does.
    await page.evaluate(() => window.app.extensionManager.command.execute("Comfy.QueuePrompt"));
    await page.waitForFunction((n) => window.__runs.length > n, before, { timeout: 600000, polling: 500 });
    const result = await page.evaluate((n) => window.__runs[n], before);
    note(`${label}: ${result.ok ? "ok" : "failed"} in ${((Date.now() - t0) / 1000).toFixed(1)} s (prompt ${result.id})`);
    if (!result.ok) throw new Error(`${label} failed: ${JSON.stringify(result.error).slice(0, 3000)}`);
    return result.id;
  }

  const widgetState = () =>
    page.evaluate((id) => {
      const node = window.app.graph.getNodeById(id);
      const w = node.widgets.find((x) => x.name === "schedule_json");
      const root = w.editor.element;
      return {
        value: w.value,
        badge: root.querySelector(".ohs-badge")?.textContent ?? null,
        rows: root.querySelectorAll("tr.ohs-row").length,
        issues: [...root.querySelectorAll(".ohs-issues li")].map((li) => li.textContent),
      };
    }, report.loaded.editorId);

  report.before_run = await widgetState();
  report.first_prompt_id = await run("run 1 (plan + render)");
  await page.waitForTimeout(500);
  report.after_run = await widgetState();

  // Centre the editor node at 100 % zoom: the widget hides its DOM when zoomed out (hideOnZoom).
  await page.evaluate((id) => {
    const app = window.app;
    const node = app.graph.getNodeById(id);
    const ds = app.canvas.ds;
    ds.scale = 1;
    const rect = app.canvasEl.getBoundingClientRect();
    ds.offset[0] = -node.pos[0] + (rect.width - node.size[0]) / 2;
    ds.offset[1] = -node.pos[1] + (rect.height - node.size[1]) / 2 + 20;
    app.graph.setDirtyCanvas(true, true);
  }, report.loaded.editorId);
  await page.waitForTimeout(800);
  // Edit shot 0 the way an artist does: focus a cell, select all, type (text cells commit on input).
  const root = page.locator(".ohs-root").first();
  for (const [field, text] of [["action", env.EDIT_ACTION], ["prompt", env.EDIT_TEXT]]) {
    const cell = root.locator(`[data-index="0"][data-field="${field}"]`);
    await cell.click();
    await page.keyboard.press("Control+A");
    await page.keyboard.type(text);
    await cell.evaluate((el) => {
      el.blur();
      el.scrollTop = 0;
      el.scrollLeft = 0;
    });
  }
  await page.waitForTimeout(300);
  report.after_edit = await widgetState();

  // Screenshot of the widget with the edited shot.
  const box = await page.evaluate((id) => {
    const app = window.app;
    const node = app.graph.getNodeById(id);
    const [x, y] = app.canvasPosToClientPos([node.pos[0], node.pos[1] - 34]);
    return { x: Math.max(0, x - 10), y: Math.max(0, y - 10), width: node.size[0] + 20, height: node.size[1] + 54 };
  }, report.loaded.editorId);
  await page.screenshot({ path: path.join(shotsDir, "schedule_editor_widget.png"), clip: box });

  report.second_prompt_id = await run("run 2 (after the edit)");
  await page.waitForTimeout(500);
  report.after_second_run = await widgetState();

  // The whole graph, large enough that the widgets stay drawn (they hide below half zoom), cropped
  // to the graph.
  const graphBox = () =>
    page.evaluate(() => {
      const app = window.app;
      app.canvas.deselectAll();
      document.activeElement?.blur?.();
      const boxes = [...app.graph.nodes.map((n) => [n.pos[0], n.pos[1] - 34, n.size[0], n.size[1] + 34]),
        ...app.graph.groups.map((g) => [g.pos[0], g.pos[1], g.size[0], g.size[1]])];
      const x0 = Math.min(...boxes.map((b) => b[0]));
      const y0 = Math.min(...boxes.map((b) => b[1]));
      const x1 = Math.max(...boxes.map((b) => b[0] + b[2]));
      const y1 = Math.max(...boxes.map((b) => b[1] + b[3]));
      return { x0, y0, w: x1 - x0, h: y1 - y0 };
    });
  let g = await graphBox();
  const width = 2400;
  const scale = (width - 200) / g.w;
  await page.setViewportSize({ width, height: Math.round(g.h * scale + 260) });
  await page.waitForTimeout(500);
  const clip = await page.evaluate(({ g, scale }) => {
    const app = window.app;
    const ds = app.canvas.ds;
    const r = app.canvasEl.getBoundingClientRect();
    ds.scale = scale;
    ds.offset[0] = (r.width / scale - g.w) / 2 - g.x0;
    ds.offset[1] = (r.height / scale - g.h) / 2 - g.y0;
    app.graph.setDirtyCanvas(true, true);
    const [cx0, cy0] = app.canvasPosToClientPos([g.x0, g.y0]);
    const [cx1, cy1] = app.canvasPosToClientPos([g.x0 + g.w, g.y0 + g.h]);
    return { x: cx0 - 16, y: cy0 - 16, width: cx1 - cx0 + 32, height: cy1 - cy0 + 32 };
  }, { g, scale });
  await page.waitForTimeout(1000);
  await page.screenshot({ path: path.join(shotsDir, "workflow_system2_graph.png"), clip });
} catch (e) {
  report.error = String(e?.stack || e);
  try {
    await page.screenshot({ path: path.join(shotsDir, "failure.png") });
  } catch {
    // the page is gone
  }
} finally {
  report.console_errors = errors;
  writeFileSync(env.RESULT, JSON.stringify(report, null, 1));
  await browser.close();
}
