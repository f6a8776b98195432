// The top bar and banners: which engine the server runs (a loud banner for the preview engine), whether the live
// connection is up, and errors that stop the page from working.

import { elementsById } from "./elements.js";

export class StatusBar {
  constructor() {
    Object.assign(this, elementsById({
      badge: "engine-badge",
      previewBanner: "preview-banner",
      engineBanner: "engine-banner",
      connection: "connection",
      connectionText: "connection-text",
      fatal: "fatal-banner",
    }));
    this.countdown = null;
  }

  /** Shows `config.engine`: name, version, device, and whether it is the preview stand-in or still loading. */
  showEngine(engine) {
    if (!engine) return;
    const name = engine.is_preview ? "Preview engine" : engine.name === "infinitetalk" ? "InfiniteTalk" : engine.name;
    const profile = engine.memory_profile ? `${engine.memory_profile} memory` : null;
    const gpus = (engine.instances?.length ?? 1) > 1 ? `${engine.instances.length} GPUs` : null;
    this.badge.textContent = [name, engine.version, engine.device, profile, gpus].filter(Boolean).join(" · ");
    this.badge.title = engine.memory_profile
      ? `Memory profile: ${engine.memory_profile} (how the model's weights sit in GPU memory)` : "";
    this.badge.dataset.preview = String(Boolean(engine.is_preview));
    this.badge.hidden = false;
    this.previewBanner.hidden = !engine.is_preview;
    this.engineBanner.hidden = engine.ready !== false;
    this.engineBanner.textContent = "The engine is still loading. New videos wait in the queue until it is ready.";
  }

  /** @param {{name: "connecting"|"live"|"waiting", retryInMs?: number}} state  from LiveSocket */
  showConnection(state) {
    clearInterval(this.countdown);
    this.connection.dataset.state = state.name;
    if (state.name === "live") {
      this.connectionText.textContent = "Live updates on";
    } else if (state.name === "connecting") {
      this.connectionText.textContent = "Connecting…";
    } else {
      const retryAt = Date.now() + state.retryInMs;
      const tick = () => {
        const seconds = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
        this.connectionText.textContent = `Offline · retrying in ${seconds} s`;
      };
      tick();
      this.countdown = setInterval(tick, 1000);
    }
  }

  /** Shows an error that keeps the page from working, with a retry button; `null` hides it. */
  showFatal(message, onRetry) {
    this.fatal.hidden = !message;
    document.getElementById("fatal-text").textContent = message ?? "";
    document.getElementById("fatal-retry").onclick = onRetry ?? null;
  }
}
