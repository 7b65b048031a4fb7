// OmniHuman schedule editor: registers the ComfyUI extension (see schedule_extension.js).
//
// The frontend's `app` is reached through its /scripts/app.js shim, located from this file's own
// URL: /<root>/extensions/<pack>/[js/]schedule_editor.js -> /<root>/scripts/app.js. That works
// whether the pack's WEB_DIRECTORY is ./web or ./web/js, and behind a sub-path proxy, where a fixed
// "../../scripts/app.js" would be right for only one of them.

import { scheduleEditorExtension } from "./schedule_extension.js";

function appModuleUrl() {
  const here = new URL(import.meta.url);
  const at = here.pathname.indexOf("/extensions/");
  const root = at >= 0 ? here.pathname.slice(0, at + 1) : "/";
  return new URL(`${root}scripts/app.js`, here).href;
}

async function findApp() {
  try {
    const mod = await import(appModuleUrl());
    if (mod && mod.app) return mod.app;
  } catch (e) {
    console.warn("[OmniHuman] could not import scripts/app.js; using window.comfyAPI", e);
  }
  return globalThis.comfyAPI?.app?.app ?? null;
}

const app = await findApp();
if (app && typeof app.registerExtension === "function") {
  app.registerExtension(scheduleEditorExtension(app));
} else {
  console.error("[OmniHuman] the ComfyUI app was not found; the schedule editor is not registered");
}
