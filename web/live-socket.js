// The `/ws` connection: JSON messages in, automatic reconnection with exponential backoff out.
// After every (re)connection the page must resync from the HTTP API, because broadcasts sent while the socket was
// down are lost; `onOpen` is the hook for that.

const PING_INTERVAL_MS = 20_000;

export class LiveSocket {
  /**
   * @param {object} options
   * @param {URL|string} options.url
   * @param {(message: object) => void} options.onMessage  every JSON message except `pong`
   * @param {(isReconnect: boolean) => void} options.onOpen
   * @param {(state: {name: "connecting"|"live"|"waiting", retryInMs?: number}) => void} options.onStateChange
   */
  constructor({ url, onMessage, onOpen, onStateChange, minDelayMs = 500, maxDelayMs = 15_000 }) {
    this.url = url;
    this.onMessage = onMessage;
    this.onOpen = onOpen;
    this.onStateChange = onStateChange;
    this.minDelayMs = minDelayMs;
    this.maxDelayMs = maxDelayMs;
    this.failures = 0; // consecutive connection attempts that did not stay open
    this.hasBeenOpen = false;
    this.socket = null;
    this.retryTimer = null;
    this.pingTimer = null;
    this.lastMessageAt = 0;
  }

  start() {
    // Retry at once when the network or the tab comes back, instead of waiting out the backoff.
    window.addEventListener("online", () => this.retryNow());
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.retryNow();
    });
    this.connect();
  }

  /** Skips the remaining backoff delay, if the socket is waiting to reconnect. */
  retryNow() {
    if (this.retryTimer === null) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.connect();
  }

  connect() {
    this.onStateChange({ name: "connecting" });
    const socket = new WebSocket(this.url);
    this.socket = socket;
    socket.addEventListener("open", () => {
      this.failures = 0;
      this.lastMessageAt = Date.now();
      this.startPinging(socket);
      this.onStateChange({ name: "live" });
      const isReconnect = this.hasBeenOpen;
      this.hasBeenOpen = true;
      this.onOpen(isReconnect);
    });
    socket.addEventListener("message", (event) => {
      this.lastMessageAt = Date.now();
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return; // not JSON: nothing the page can use
      }
      if (message?.type !== "pong") this.onMessage(message);
    });
    // `error` is always followed by `close`, so only `close` schedules the retry.
    socket.addEventListener("close", () => {
      if (this.socket !== socket) return;
      this.stopPinging();
      this.scheduleRetry();
    });
  }

  scheduleRetry() {
    const backoff = Math.min(this.maxDelayMs, this.minDelayMs * 2 ** this.failures);
    const delay = Math.round(backoff * (0.75 + Math.random() * 0.25)); // jitter: clients must not retry in step
    this.failures += 1;
    this.onStateChange({ name: "waiting", retryInMs: delay });
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.connect();
    }, delay);
  }

  // A connection can die without a `close` event (a laptop sleeps, a proxy drops it). Pings keep proxies from
  // timing it out, and a socket that stayed silent for two intervals is closed so that it reconnects.
  startPinging(socket) {
    this.stopPinging();
    this.pingTimer = setInterval(() => {
      if (Date.now() - this.lastMessageAt > 2 * PING_INTERVAL_MS) {
        // Do not wait for the close handshake of a dead connection: forget it and reconnect now.
        this.socket = null;
        socket.close();
        this.stopPinging();
        this.scheduleRetry();
        return;
      }
      if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "ping" }));
    }, PING_INTERVAL_MS);
  }

  stopPinging() {
    clearInterval(this.pingTimer);
    this.pingTimer = null;
  }
}
