// What the page knows about jobs and the queue, merged from HTTP answers and WebSocket messages.
// Messages can arrive out of order with HTTP answers (a resync races live updates), so merging is defensive:
// a finished job never becomes unfinished again, and a job's progress never goes backwards.

const TERMINAL = new Set(["completed", "failed", "cancelled"]);

export const isTerminal = (status) => TERMINAL.has(status);

export class JobStore extends EventTarget {
  constructor() {
    super();
    /** @type {Map<string, object>} request id -> status object (docs/api.md), plus live progress */
    this.jobs = new Map();
    /** The latest `queue_update` / `GET /api/queue` snapshot. */
    this.queue = null;
  }

  /** Merges a status object (`GET /api/status`, `status_update`, a list entry, the generate answer). */
  upsert(status) {
    const id = status.request_id;
    const known = this.jobs.get(id);
    if (known && isTerminal(known.status) && !isTerminal(status.status)) return; // a stale answer
    const merged = { ...known, ...status };
    delete merged.type;
    merged.progress = laterProgress(known?.progress, status.progress);
    if (isTerminal(merged.status)) merged.position_in_queue = null;
    this.jobs.set(id, merged);
    this.changed(id);
  }

  /** Applies a `progress_update`; returns false for a job the page does not know yet. */
  applyProgress(message) {
    const job = this.jobs.get(message.request_id);
    if (!job) return false;
    if (isTerminal(job.status)) return true;
    const { stage, step, steps, clip, clips, progress, eta_seconds } = message;
    job.progress = laterProgress(job.progress, { stage, step, steps, clip, clips, progress, eta_seconds });
    if (message.message) job.message = message.message;
    if (job.status === "queued") job.status = "processing";
    job.position_in_queue = null;
    this.changed(job.request_id);
    return true;
  }

  /** Applies a `clip_ready`: one more clip of the video can be watched; returns false for a job the page does not
   *  know yet. (A re-queued job starts again at clip 1, so these numbers may go down.) */
  applyClipReady(message) {
    const job = this.jobs.get(message.request_id);
    if (!job) return false;
    if (isTerminal(job.status)) return true;
    job.segments_ready = message.segments_ready ?? message.clip;
    job.playlist_url = message.playlist_url;
    job.live_seconds = message.duration_seconds;
    if (job.status === "queued") job.status = "processing";
    job.position_in_queue = null;
    this.changed(job.request_id);
    return true;
  }

  /** Applies a `queue_update` (or `GET /api/queue`): queue counts and every queued job's position. */
  applyQueue(snapshot) {
    const queuedIds = snapshot.queued_ids ?? snapshot.requests?.filter((r) => r.status === "queued")
      .map((r) => r.request_id) ?? [];
    this.queue = { ...snapshot, queued_ids: queuedIds };
    for (const job of this.jobs.values()) {
      const index = queuedIds.indexOf(job.request_id);
      if (job.status === "queued" && index >= 0 && job.position_in_queue !== index + 1) {
        job.position_in_queue = index + 1;
        this.changed(job.request_id);
      }
    }
    this.dispatchEvent(new CustomEvent("queue"));
  }

  /** Jobs newest first. */
  sorted() {
    return [...this.jobs.values()].sort((a, b) => createdAt(b) - createdAt(a));
  }

  /** Ids of jobs that are still waiting or running. */
  activeIds() {
    return [...this.jobs.values()].filter((job) => !isTerminal(job.status)).map((job) => job.request_id);
  }

  changed(id) {
    this.dispatchEvent(new CustomEvent("job", { detail: { id } }));
  }
}

function createdAt(job) {
  return Date.parse(job.created_at ?? job.timestamp) || 0;
}

/** The newer of two progress records: the one further along (progress is monotonic per job). */
function laterProgress(known, incoming) {
  if (!incoming) return known ?? null;
  if (!known) return incoming;
  return (incoming.progress ?? 0) >= (known.progress ?? 0) ? incoming : known;
}
