// The right-hand panel: queue counters and the list of jobs, newest first, kept in step with the JobStore.

import { shortId } from "../format.js";
import { BatchSummary } from "./batch-summary.js";
import { JobCard } from "./job-card.js";
import { elementsById } from "./elements.js";

export class JobsPanel {
  /**
   * @param {import("../jobs-store.js").JobStore} store
   * @param {{onCancel: (id: string) => Promise<void>, onCancelBatch: (id: string) => Promise<void>,
   *          onLoadMore: () => Promise<void>}} actions
   */
  constructor(store, { onCancel, onCancelBatch, onLoadMore }) {
    this.store = store;
    this.onCancel = onCancel;
    this.onCancelBatch = onCancelBatch;
    /** @type {Map<string, BatchSummary>} */
    this.batches = new Map();
    Object.assign(this, elementsById({
      list: "jobs",
      batchList: "batches",
      empty: "jobs-empty",
      loadMore: "load-more",
      waiting: "queue-waiting",
      running: "queue-running",
      announcer: "announcer",
    }));
    /** @type {Map<string, JobCard>} */
    this.cards = new Map();

    store.addEventListener("job", (event) => this.showJob(event.detail.id));
    store.addEventListener("queue", () => this.showQueue());
    this.loadMore.addEventListener("click", async () => {
      this.loadMore.disabled = true;
      try {
        await onLoadMore();
      } finally {
        this.loadMore.disabled = false;
      }
    });
  }

  showJob(id) {
    const job = this.store.jobs.get(id);
    let card = this.cards.get(id);
    if (!card) {
      card = new JobCard(id, this.onCancel);
      this.cards.set(id, card);
      this.insertInOrder(card);
    }
    const before = card.element.dataset.status;
    card.update(job);
    if (before && before !== job.status) this.announce(job);
    this.empty.hidden = this.cards.size > 0;
    if (job.batch_id) this.showBatch(job.batch_id);
  }

  /** The batch's summary above the cards, newest batch first. */
  showBatch(batchId) {
    let summary = this.batches.get(batchId);
    if (!summary) {
      summary = new BatchSummary(batchId, this.onCancelBatch);
      this.batches.set(batchId, summary);
      this.batchList.prepend(summary.element);
    }
    summary.update([...this.store.jobs.values()].filter((job) => job.batch_id === batchId));
  }

  /** Tells screen reader users when a job they watched changes to a state that needs them. */
  announce(job) {
    const name = `Video ${shortId(job.request_id)}`;
    const text = {
      processing: `${name} started.`,
      completed: `${name} is ready to play and download.`,
      failed: `${name} failed: ${job.error?.message ?? job.message ?? "no reason given"}.`,
      cancelled: `${name} was cancelled.`,
    }[job.status];
    if (text) this.announcer.textContent = text;
  }

  // Cards are only ever inserted, never moved: moving a <video> in the DOM would pause it.
  insertInOrder(card) {
    const sorted = this.store.sorted();
    const index = sorted.findIndex((job) => job.request_id === card.id);
    const next = sorted.slice(index + 1).find((job) => this.cards.get(job.request_id)?.element.isConnected);
    this.list.insertBefore(card.element, next ? this.cards.get(next.request_id).element : null);
  }

  showQueue() {
    const queue = this.store.queue;
    this.waiting.textContent = `${queue.queue_size} of ${queue.max_queue_size}`;
    this.running.textContent = `${queue.processing_count} of ${queue.max_concurrent}`;
  }

  /** Shows "Show older videos" while the server has more history than the page loaded. */
  setHasMore(hasMore) {
    this.loadMore.hidden = !hasMore;
  }

  /** Shows the empty-list text once the history is known to be empty. */
  showLoaded() {
    this.empty.hidden = this.cards.size > 0;
  }
}
