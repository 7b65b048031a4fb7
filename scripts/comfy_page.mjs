// Drive ComfyUI's real frontend (1.35) in headless Chromium with playwright-core.
// Used by scripts/build_workflows.mjs and tests/integration/browser_edit.mjs. playwright-core is
// a test-machine tool only (CI does not need it): it is looked up in $PLAYWRIGHT_CORE (a folder),
// tests/integration/node_modules, then the normal Node resolution (NODE_PATH).

import { createRequire } from "node:module";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(here, "..");

export function loadPlaywright() {
  const candidates = [
    process.env.PLAYWRIGHT_CORE,
    path.join(REPO, "tests", "integration", "node_modules", "playwright-core"),
    "playwright-core",
  ].filter(Boolean);
  const require = createRequire(import.meta.url);
  for (const c of candidates) {
    try {
      return require(c);
    } catch {
      // try the next place
    }
  }
  throw new Error("playwright-core not found: npm install --no-save --prefix tests/integration playwright-core");
}

export function chromiumPath() {
  const p = process.env.CHROMIUM || "/usr/bin/chromium";
  if (!existsSync(p)) throw new Error(`Chromium not found at ${p}; set CHROMIUM`);
  return p;
}

/**
 * Open ComfyUI at `url`; resolves when the app is up and the node types in `types` are registered
 * (and, when the schedule editor node is among them, the pack's widget extension too).
 */
export async function openComfy(url, { width = 1600, height = 1000, log = () => {}, types = ["OmniHumanScheduleEditor"] } = {}) {
  const { chromium } = loadPlaywright();
  const browser = await chromium.launch({
    executablePath: chromiumPath(),
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
  const page = await browser.newPage({ viewport: { width, height }, deviceScaleFactor: 1 });
  const errors = [];
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(m.text());
    log(`[browser ${m.type()}] ${m.text()}`);
  });
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(url, { waitUntil: "domcontentloaded" });
  try {
    await page.waitForFunction(
      (types) =>
        window.app?.graph &&
        window.app.vueAppReady &&
        types.every((t) => window.LiteGraph?.registered_node_types?.[t]) &&
        (!types.includes("OmniHumanScheduleEditor") ||
          window.app.extensions?.some((e) => e.name === "OmniHuman.ScheduleEditor")),
      types,
      { timeout: 120000 },
    );
  } catch (e) {
    const missing = await page.evaluate(
      (types) => types.filter((t) => !window.LiteGraph?.registered_node_types?.[t]),
      types,
    );
    await browser.close();
    throw new Error(`ComfyUI at ${url} did not get ready: node types not registered: ${missing.join(", ")}; ${errors.join("; ")}`);
  }
  return { browser, page, errors };
}

/** Load a UI-format workflow into the canvas (what opening the file does) and fit it to the view. */
export async function loadWorkflow(page, workflow) {
  await page.evaluate(async (wf) => {
    await window.app.loadGraphData(wf, true, true, null);
  }, workflow);
  await fitView(page);
}

export async function fitView(page) {
  await page.evaluate(async () => {
    await window.app.extensionManager.command.execute("Comfy.Canvas.FitView");
    window.app.graph.setDirtyCanvas(true, true);
  });
  await page.waitForTimeout(300);
}

/** The frontend's own API-format prompt and saved-workflow JSON for the current graph. */
export async function graphToPrompt(page) {
  return page.evaluate(async () => {
    const p = await window.app.graphToPrompt();
    return { output: p.output, workflow: p.workflow };
  });
}
