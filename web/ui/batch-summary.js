// One batch in the jobs panel: how many of its videos are done, its progress, "Cancel all" and "Download all"
// (a ZIP of the finished videos, GET /api/batches/{id}/results.zip). Its videos keep their own cards below.

import { serviceURL } from "../api.js";
import { shortId } from "../format.js";
import { isTerminal } from "../jobs-store.js";

export class BatchSummary {
  constructor(id, onCancel) {
    this.id = id;
    this.element = document.createElement("section");
    this.element.className = "batch";
    this.element.dataset.batchId = id;
    this.element.setAttribute("aria-label", `Batch ${shortId(id)}`);
    this.title = document.createElement("p");
    this.title.className = "batch-title";
    this.bar = document.createElement("progress");
    this.bar.max = 1;
    this.bar.setAttribute("aria-label", `Progress of batch ${shortId(id)}`);
    const actions = document.createElement("div");
    actions.className = "batch-actions";
    this.cancel = document.createElement("button");
    this.cancel.type = "button";
    this.cancel.className = "button button-small";
    this.cancel.textContent = "Cancel all";
    this.cancel.addEventListener("click", () => onCancel(id));
    this.download = document.createElement("a");
    this.download.className = "button button-small";
    this.download.textContent = "Download all (ZIP)";
    this.download.href = serviceURL(`api/batches/${encodeURIComponent(id)}/results.zip`).href;
    this.download.setAttribute("download", `infinitetalk-batch-${id}.zip`);
    actions.append(this.cancel, this.download);
    this.element.append(this.title, this.bar, actions);
  }

  /** @param {object[]} jobs  the batch's status objects the page knows */
  update(jobs) {
    const done = jobs.filter((job) => job.status === "completed").length;
    const ended = jobs.filter((job) => isTerminal(job.status)).length;
    const progress = jobs.reduce(
      (sum, job) => sum + (isTerminal(job.status) ? 1 : job.status === "processing" ? job.progress?.progress ?? 0 : 0),
      0,
    ) / Math.max(1, jobs.length);
    this.bar.value = progress;
    const percent = Math.floor(progress * 100);
    this.title.textContent =
      `Batch ${shortId(this.id)} · ${jobs.length} videos · ${done} done` + (ended < jobs.length ? ` · ${percent}%` : "");
    this.element.dataset.done = String(done);
    this.cancel.hidden = ended === jobs.length;
    this.download.hidden = done === 0;
  }
}
