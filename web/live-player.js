// Plays a job's video while it is being made: the service's HLS EVENT playlist (`live.m3u8`, docs/api.md) fed to a
// <video> through Media Source Extensions. The init segment, then each clip's media segment, go into one
// SourceBuffer in playlist order, each exactly once; the page calls `follow()` whenever the job has more clips ready.

/** The live stream's type: fragmented MP4 with H.264 (High profile) video and AAC-LC audio. */
export const LIVE_TYPE = 'video/mp4; codecs="avc1.64001f, mp4a.40.2"';

// Memory stays bounded on long videos: what was watched long ago is let go (the final MP4 keeps it all).
const KEEP_BEHIND_SECONDS = 60;
const TRIM_STEP_SECONDS = 30;

/** True when this browser can play the live stream. */
export function canPlayLive(type = LIVE_TYPE) {
  return typeof MediaSource !== "undefined" && MediaSource.isTypeSupported(type);
}

/**
 * What the player needs from an HLS media playlist: the init segment's URL, the media segments' URLs and durations,
 * and whether the playlist has ended. URLs are resolved against the playlist's own URL.
 */
export function parsePlaylist(text, playlistURL) {
  const lines = text.split(/\r?\n/).map((line) => line.trim()).filter(Boolean);
  if (lines[0] !== "#EXTM3U") throw new Error("the live playlist is not an HLS playlist");
  const resolve = (uri) => new URL(uri, playlistURL).href;
  let init = null;
  let duration = null;
  const segments = [];
  let ended = false;
  for (const line of lines.slice(1)) {
    if (line.startsWith("#EXT-X-MAP:")) {
      const uri = /URI="([^"]*)"/.exec(line)?.[1];
      if (uri) init = resolve(uri);
    } else if (line.startsWith("#EXTINF:")) {
      duration = Number.parseFloat(line.slice("#EXTINF:".length));
    } else if (line === "#EXT-X-ENDLIST") {
      ended = true;
    } else if (!line.startsWith("#")) {
      segments.push({ url: resolve(line), duration });
      duration = null;
    }
  }
  return { init, segments, ended };
}

export class LivePlayer {
  /**
   * Takes over `video` (its `src` becomes the stream) until `close()`.
   * @param {HTMLVideoElement} video
   * @param {URL|string} playlistURL
   * @param {object} [options]
   * @param {(error: Error) => void} [options.onProblem] called once when the stream cannot go on; the player is closed
   */
  constructor(video, playlistURL, { onProblem = () => {}, type = LIVE_TYPE } = {}) {
    this.video = video;
    this.playlistURL = String(playlistURL);
    this.type = type;
    this.onProblem = onProblem;
    this.appended = 0; // media segments given to the SourceBuffer, in playlist order
    this.ended = false; // the whole stream is in: the playlist ended and every segment was appended
    this.closed = false;
    this.running = null;
    this.again = false;
    this.stop = new AbortController(); // cancels downloads and listeners on close
    this.sourceBuffer = null;
    this.mediaSource = new MediaSource();
    this.opened = new Promise((resolve) => { // or closed first: nothing waits for ever
      this.mediaSource.addEventListener("sourceopen", resolve, { once: true });
      this.stop.signal.addEventListener("abort", resolve, { once: true });
    });
    this.objectURL = URL.createObjectURL(this.mediaSource);
    video.addEventListener("error", () => this.fail(new Error("the browser could not play the stream")),
                           { signal: this.stop.signal });
    video.src = this.objectURL;
  }

  /** Catches up when the service reports more segments ready than were appended (`clip_ready`, a status object). */
  follow(segmentsReady) {
    if (this.closed || !(segmentsReady > this.appended)) return this.running ?? Promise.resolve();
    return this.refresh();
  }

  /** Reads the playlist and appends what is new; a call made while one runs makes it read the playlist again. */
  refresh() {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      try {
        do {
          this.again = false;
          await this.catchUp();
        } while (this.again && !this.closed);
      } catch (error) {
        this.fail(error);
      } finally {
        this.running = null;
      }
    })();
    return this.running;
  }

  /** Stops following the stream and lets the <video> go (the caller gives it its next `src`). */
  close() {
    if (this.closed) return;
    this.closed = true;
    this.stop.abort();
    URL.revokeObjectURL(this.objectURL);
  }

  async catchUp() {
    const response = await this.download(this.playlistURL);
    if (response === null) return; // 404 `no_segments_yet`: the next `clip_ready` asks again
    const playlist = parsePlaylist(await response.text(), response.url || this.playlistURL);
    if (playlist.segments.length < this.appended) throw new Error("the live stream started over");
    if (playlist.segments.length === 0) return;
    if (!playlist.init) throw new Error("the live playlist names no init segment");
    await this.opened;
    if (this.closed) return;
    if (!this.sourceBuffer) {
      this.sourceBuffer = this.mediaSource.addSourceBuffer(this.type);
      this.sourceBuffer.mode = "segments"; // each segment keeps its own timestamps: no drift, no gap
      await this.append(await this.bytes(playlist.init));
    }
    while (this.appended < playlist.segments.length && !this.closed) {
      const bytes = await this.bytes(playlist.segments[this.appended].url);
      await this.trimBehindPlayhead();
      await this.append(bytes);
      this.appended += 1;
      if (this.appended === 1) this.start();
    }
    if (playlist.ended && !this.closed && this.mediaSource.readyState === "open") {
      this.mediaSource.endOfStream(); // the video may now play to its end instead of waiting for more
      this.ended = true;
    }
  }

  /** The timeline starts at a small offset (the encoders' delay): begin there, not at 0 where nothing is. */
  async start() {
    const { buffered } = this.video;
    if (buffered.length > 0) this.video.currentTime = buffered.start(0);
    try {
      await this.video.play();
    } catch (error) {
      if (error.name !== "NotAllowedError" || this.closed) return;
      this.video.muted = true; // browsers let a muted video start on its own; its controls unmute it
      await this.video.play().catch(() => {});
    }
  }

  async download(url) {
    const response = await fetch(url, { cache: "no-store", signal: this.stop.signal });
    if (response.status === 404 && url === this.playlistURL) return null;
    if (!response.ok) throw new Error(`${new URL(url).pathname.split("/").pop()} answered HTTP ${response.status}`);
    return response;
  }

  async bytes(url) {
    return (await this.download(url)).arrayBuffer();
  }

  append(bytes) {
    const updated = untilUpdated(this.sourceBuffer);
    this.sourceBuffer.appendBuffer(bytes);
    return updated;
  }

  async trimBehindPlayhead() {
    const { buffered, currentTime } = this.video;
    const keepFrom = currentTime - KEEP_BEHIND_SECONDS;
    if (buffered.length === 0 || buffered.start(0) > keepFrom - TRIM_STEP_SECONDS) return;
    const updated = untilUpdated(this.sourceBuffer);
    this.sourceBuffer.remove(0, keepFrom);
    await updated;
  }

  fail(error) {
    if (this.closed) return; // a download or append cut short by close(): not a problem
    this.close();
    this.onProblem(error);
  }
}

/** Resolves when the SourceBuffer's current append or remove is done; rejects when the browser refused it. */
function untilUpdated(sourceBuffer) {
  return new Promise((resolve, reject) => {
    const listening = new AbortController();
    const options = { once: true, signal: listening.signal };
    sourceBuffer.addEventListener("updateend", () => {
      listening.abort();
      resolve();
    }, options);
    sourceBuffer.addEventListener("error", () => {
      listening.abort();
      reject(new Error("the browser could not decode a segment of the live stream"));
    }, options);
  });
}
