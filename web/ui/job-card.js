// One job in the list: status, queue position, stage and progress while it runs, the video as it is made and once
// it is ready, the reason when it failed. Built once and updated in place, so a playing video or a focused button
// survive the frequent progress updates.

import { serviceURL } from "../api.js";
import { formatBytes, formatEta, formatMediaDuration, formatWhen, shortId } from "../format.js";
import { isTerminal } from "../jobs-store.js";
import { LivePlayer, canPlayLive } from "../live-player.js";

const STATUS_LABELS = {
  queued: "Waiting", processing: "Running", completed: "Ready", failed: "Failed", cancelled: "Cancelled",
};

// Engine stages (docs/engine-protocol.md) in words.
const STAGE_LABELS = {
  decoding_audio: "Decoding audio",
  audio_features: "Analysing speech",
  encoding_image: "Encoding portrait",
  encoding_text: "Encoding prompt",
  generating: "Generating frames",
  encoding_video: "Writing MP4",
};

const TEMPLATE = document.createElement("template");
TEMPLATE.innerHTML = `
  <li class="job">
    <div class="job-head">
      <span class="status-pill"></span>
      <span class="job-title">Video <code class="job-id"></code></span>
      <time class="job-time"></time>
    </div>
    <p class="job-params"></p>
    <p class="job-queue" hidden></p>
    <div class="job-progress" hidden>
      <div class="progress-labels">
        <span class="stage-label"></span>
        <span class="progress-percent"></span>
      </div>
      <progress max="1" value="0"></progress>
      <p class="job-detail"></p>
      <p class="live-note" hidden></p>
    </div>
    <div class="job-result" hidden></div>
    <div class="job-problem" hidden>
      <p class="job-problem-message"></p>
      <p class="job-problem-code"></p>
    </div>
    <p class="job-notice" role="alert" hidden></p>
    <div class="job-actions">
      <a class="button button-primary download" hidden>Download MP4</a>
      <button type="button" class="button cancel" hidden>Cancel</button>
    </div>
  </li>`;

export class JobCard {
  /** @param {string} id  @param {(id: string) => Promise<void>} onCancel */
  constructor(id, onCancel) {
    this.id = id;
    this.element = TEMPLATE.content.firstElementChild.cloneNode(true);
    this.element.dataset.requestId = id;
    this.element.id = `job-${id}`;
    this.element.tabIndex = -1; // a target for "See its progress" links
    this.livePlayer = null; // plays the video while it is made
    this.liveProblem = null; // why the live preview stopped, if it did
    this.finalShown = false;
    this.part = (selector) => this.element.querySelector(selector);
    this.part(".job-id").textContent = shortId(id);
    this.part(".job-id").title = id;
    this.part("progress").setAttribute("aria-label", `Progress of video ${shortId(id)}`);
    const cancel = this.part(".cancel");
    cancel.setAttribute("aria-label", `Cancel video ${shortId(id)}`);
    cancel.addEventListener("click", async () => {
      cancel.disabled = true;
      cancel.textContent = "Cancelling…";
      this.showNotice(null);
      try {
        await onCancel(id);
      } catch (error) {
        this.showNotice(`Could not cancel: ${error.message}`);
      } finally {
        cancel.disabled = false;
        cancel.textContent = "Cancel";
      }
    });
  }

  /** Shows the job as it is now. */
  update(job) {
    const { status } = job;
    this.element.dataset.status = status;
    const pill = this.part(".status-pill");
    pill.textContent = STATUS_LABELS[status] ?? status;
    const created = job.created_at ?? job.timestamp;
    const time = this.part(".job-time");
    time.dateTime = created ?? "";
    time.textContent = created ? formatWhen(created) : "";
    this.part(".job-params").textContent = describeParams(job.params);

    this.updateQueue(job);
    this.updateProgress(job);
    this.updateResult(job);
    this.updateProblem(job);
    this.part(".cancel").hidden = isTerminal(status);
  }

  updateQueue(job) {
    const queueLine = this.part(".job-queue");
    queueLine.hidden = job.status !== "queued";
    if (queueLine.hidden) return;
    const parts = [job.position_in_queue ? `Position ${job.position_in_queue} in the queue` : "In the queue"];
    const eta = formatEta(job.estimated_seconds) ?? job.estimated_time;
    if (eta) parts.push(`ready in ${eta}`);
    queueLine.textContent = parts.join(" · ");
  }

  updateProgress(job) {
    const panel = this.part(".job-progress");
    panel.hidden = job.status !== "processing";
    if (panel.hidden) return;
    const progress = job.progress ?? {};
    const fraction = Math.min(1, Math.max(0, progress.progress ?? 0));
    this.part("progress").value = fraction;
    // Rounded down (100% only when done), with a nudge so that 0.58 reads 58%, not 57%.
    this.part(".progress-percent").textContent = `${Math.floor(fraction * 100 + 1e-9)}%`;
    const stageLabel = STAGE_LABELS[progress.stage] ??
      (progress.stage ? progress.stage.replaceAll("_", " ") : "Starting");
    this.part(".stage-label").textContent = stageLabel;
    // Clip and step when the engine reports them, else the server's own words for what is happening.
    const detail = [];
    if (progress.clip && progress.clips) detail.push(`Clip ${progress.clip} of ${progress.clips}`);
    if (progress.step && progress.steps) detail.push(`step ${progress.step} of ${progress.steps}`);
    if (detail.length === 0 && job.message && job.message.toLowerCase() !== stageLabel.toLowerCase()) {
      detail.push(job.message);
    }
    const eta = formatEta(progress.eta_seconds ?? job.estimated_seconds) ?? job.estimated_time;
    if (eta) detail.push(`${eta} left`);
    const text = detail.join(" · ");
    this.part(".job-detail").textContent = text.charAt(0).toUpperCase() + text.slice(1);
  }

  updateResult(job) {
    const ready = job.status === "completed" && Boolean(job.result_url);
    if (ready) this.showFinalVideo(job);
    else if (job.status === "processing") this.followLive(job);
    else this.stopLive();
    this.part(".job-result").hidden = !this.part(".job-result video");
    this.part(".download").hidden = !ready;
  }

  /** While the job runs: plays what is made so far, from its first finished clip on (live-player.js). */
  followLive(job) {
    if (!job.playlist_url || !(job.segments_ready > 0) || this.liveProblem) return;
    if (!this.livePlayer) {
      if (!canPlayLive()) {
        this.showLiveNote("This browser cannot play the video while it is made; it appears here when it is done.");
        return;
      }
      this.livePlayer = new LivePlayer(this.videoElement(job), serviceURL(job.playlist_url), {
        onProblem: (error) => {
          this.liveProblem = error;
          this.livePlayer = null;
          this.part(".job-result video")?.remove();
          this.part(".job-result").hidden = true;
          this.showLiveNote(`The live preview stopped (${error.message}); the video appears here when it is done.`);
        },
      });
    }
    this.livePlayer.follow(job.segments_ready);
    const seconds = job.live_seconds > 0 ? `${formatMediaDuration(job.live_seconds)} ready, ` : "";
    this.showLiveNote(`Live preview: ${seconds}more as it is made.`);
  }

  /** A re-queued or ended job: its live stream is over (a retry starts a new one). */
  stopLive() {
    this.liveProblem = null;
    this.part(".live-note").hidden = true;
    if (!this.livePlayer) return;
    this.livePlayer.close();
    this.livePlayer = null;
    this.part(".job-result video")?.remove();
  }

  showLiveNote(text) {
    const note = this.part(".live-note");
    note.hidden = false;
    note.textContent = text;
  }

  /** The card's one <video>, made on first use: the live preview and then the final MP4 play in it. */
  videoElement(job) {
    const existing = this.part(".job-result video");
    if (existing) return existing;
    const video = document.createElement("video");
    video.controls = true;
    video.preload = "metadata";
    video.playsInline = true;
    video.setAttribute("aria-label", `Video ${shortId(job.request_id)}`);
    this.part(".job-result").prepend(video);
    return video;
  }

  /** The finished MP4, for seeking and download; a live preview that was playing goes on from where it was. */
  showFinalVideo(job) {
    if (this.finalShown) return;
    this.finalShown = true;
    const url = serviceURL(job.result_url);
    const video = this.videoElement(job);
    if (this.livePlayer) {
      const resumeAt = video.currentTime;
      const playing = !video.paused && !video.ended;
      this.livePlayer.close();
      this.livePlayer = null;
      video.addEventListener("loadedmetadata", () => {
        video.currentTime = Math.min(resumeAt, video.duration || resumeAt);
        if (playing) video.play().catch(() => {});
      }, { once: true });
    }
    video.src = url;
    const result = this.part(".job-result");
    const download = this.part(".download");
    const meta = document.createElement("p");
    meta.className = "result-meta";
    meta.textContent = describeResult(job.result);
    result.append(meta);
    for (const warning of job.result?.warnings ?? []) {
      const note = document.createElement("p");
      note.className = "result-warning";
      note.textContent = `Note: ${warning}`;
      result.append(note);
    }
    download.href = url;
    download.download = `infinitetalk-${job.request_id}.mp4`;
    download.setAttribute("aria-label", `Download video ${shortId(job.request_id)} (MP4)`);
  }

  updateProblem(job) {
    const problem = this.part(".job-problem");
    problem.hidden = job.status !== "failed" && job.status !== "cancelled";
    if (problem.hidden) return;
    const failed = job.status === "failed";
    this.part(".job-problem-message").textContent = failed
      ? job.error?.message || job.message || "The job failed without giving a reason."
      : "Cancelled before it finished.";
    this.part(".job-problem-code").textContent = failed && job.error?.code ? `Error code: ${job.error.code}` : "";
  }

  showNotice(text) {
    const notice = this.part(".job-notice");
    notice.hidden = !text;
    notice.textContent = text ?? "";
  }
}

function describeParams(params) {
  if (!params) return "";
  const parts = [];
  if (params.resolution) parts.push(params.resolution);
  if (params.steps !== undefined && params.steps !== null) parts.push(`${params.steps} steps`);
  if (params.seed !== undefined && params.seed !== null) parts.push(`seed ${params.seed}`);
  const prompt = params.prompt ? ` · “${params.prompt}”` : "";
  return parts.join(" · ") + prompt;
}

function describeResult(result) {
  if (!result) return "";
  const parts = [];
  if (Number.isFinite(result.duration_seconds)) parts.push(formatMediaDuration(result.duration_seconds));
  if (result.width && result.height) parts.push(`${result.width} × ${result.height}`);
  if (result.fps) parts.push(`${result.fps} fps`);
  if (result.bytes) parts.push(formatBytes(result.bytes));
  return parts.join(" · ");
}
