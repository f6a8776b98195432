// Entry point: loads the server's settings, builds the form and the jobs panel, and keeps the page in step with
// the server: history from `GET /api/requests`, live changes from `/ws`, a full resync after every reconnect.

import { cancelBatch, cancelRequest, getConfig, getQueue, getStatus, listRequests, serviceURL } from "./api.js";
import { JobStore } from "./jobs-store.js";
import { hasKey, signOut } from "./session.js";
import { LiveSocket } from "./live-socket.js";
import { GenerateForm } from "./ui/generate-form.js";
import { JobsPanel } from "./ui/jobs-panel.js";
import { SignInCard } from "./ui/sign-in.js";
import { StatusBar } from "./ui/status-bar.js";

const PAGE_SIZE = 20;
const MAX_HISTORY = 200; // the server's largest `limit`
const ETA_REFRESH_DELAY_MS = 400;

const statusBar = new StatusBar();
const store = new JobStore();
let panel;
let historyLimit = PAGE_SIZE;

async function main() {
  let config;
  try {
    config = await getConfig();
  } catch (error) {
    statusBar.showFatal(`Cannot load the server's settings: ${error.message}`, () => location.reload());
    return;
  }
  if (config.auth?.enabled) await signInFirst();
  statusBar.showEngine(config.engine);
  new GenerateForm(config, { onQueued: (answer) => store.upsert(answer) });
  panel = new JobsPanel(store, { onCancel: cancel, onCancelBatch: cancelWholeBatch, onLoadMore: loadMoreHistory });
  store.addEventListener("job", showProgressInTitle);

  const socket = new LiveSocket({
    url: webSocketURL(),
    onMessage: handleMessage,
    onOpen: () => resync(),
    onStateChange: (state) => statusBar.showConnection(state),
  });
  socket.start();
  await resync();
  document.documentElement.dataset.state = "ready"; // lets browser tests wait for the page
}

// MARK: - API keys (auth on)

async function signInFirst() {
  const signIn = new SignInCard();
  if (!hasKey()) {
    await signIn.ask();
  } else {
    // Check the kept key before opening the live connection with it (it may have been revoked meanwhile).
    try {
      await listRequests({ limit: 1 });
    } catch (error) {
      if (error.status !== 401) throw error;
      signOut();
      await signIn.ask(error.message);
    }
  }
  const signOutButton = document.getElementById("sign-out");
  signOutButton.hidden = false;
  signOutButton.onclick = () => {
    signOut();
    location.reload();
  };
  // A key refused later (revoked, or the server forgot it): start over with the server's reason.
  window.addEventListener("unauthorized", (event) => {
    signOut();
    document.documentElement.dataset.state = "signed-out";
    signIn.ask(event.detail.message).then(() => location.reload());
  }, { once: true });
}

function webSocketURL() {
  const url = serviceURL("ws");
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url;
}

// The tab title shows the running job's progress, for people who switch to another tab while they wait.
const PAGE_TITLE = document.title;
function showProgressInTitle() {
  const running = [...store.jobs.values()].find((job) => job.status === "processing");
  const percent = running ? Math.floor((running.progress?.progress ?? 0) * 100 + 1e-9) : null;
  const title = percent === null ? PAGE_TITLE : `${percent}% · ${PAGE_TITLE}`;
  if (document.title !== title) document.title = title;
}

// MARK: - Live messages

function handleMessage(message) {
  switch (message.type) {
    case "queue_update":
      store.applyQueue(message);
      fetchUnknownJobs([...(message.processing_ids ?? []), ...(message.queued_ids ?? [])]);
      scheduleEtaRefresh();
      break;
    case "status_update":
      store.upsert(message);
      break;
    case "progress_update":
      if (!store.applyProgress(message)) fetchJob(message.request_id);
      break;
    case "clip_ready":
      if (!store.applyClipReady(message)) fetchJob(message.request_id);
      break;
    default:
      break; // newer message types: ignored until the page knows them
  }
}

const fetching = new Set();

/** Loads a job the page has not seen (e.g. submitted from another browser). */
async function fetchJob(id) {
  if (fetching.has(id)) return;
  fetching.add(id);
  try {
    store.upsert(await getStatus(id));
  } catch {
    // Gone or unreachable: the next resync settles it.
  } finally {
    fetching.delete(id);
  }
}

function fetchUnknownJobs(ids) {
  for (const id of ids) if (!store.jobs.has(id)) fetchJob(id);
}

// A queue change moves everyone's estimate; `queue_update` carries positions but not times, so the waiting jobs'
// status objects are fetched again, once per burst of changes.
let etaRefreshTimer = null;
function scheduleEtaRefresh() {
  clearTimeout(etaRefreshTimer);
  etaRefreshTimer = setTimeout(() => {
    for (const job of store.jobs.values()) if (job.status === "queued") fetchJob(job.request_id);
  }, ETA_REFRESH_DELAY_MS);
}

// MARK: - Resync

let resyncing = null;
let resyncAgain = false;

/** Reloads history, queue and engine state from the HTTP API; calls that overlap run once more afterwards. */
function resync() {
  if (resyncing) {
    resyncAgain = true;
    return resyncing;
  }
  resyncing = (async () => {
    do {
      resyncAgain = false;
      try {
        await loadEverything();
      } catch {
        // The server is unreachable: the connection indicator says so, and the reconnect resyncs again.
      }
    } while (resyncAgain);
    resyncing = null;
  })();
  return resyncing;
}

async function loadEverything() {
  const [history, queue, config] = await Promise.all([listRequests({ limit: historyLimit }), getQueue(), getConfig()]);
  const listed = new Set();
  for (const job of history.requests) {
    listed.add(job.request_id);
    store.upsert(job);
  }
  store.applyQueue(queue);
  statusBar.showEngine(config.engine);
  // Jobs the page follows that fell outside the history page still need their latest state.
  await Promise.all(store.activeIds().filter((id) => !listed.has(id)).map(fetchJob));
  panel.setHasMore(history.total > history.requests.length && historyLimit < MAX_HISTORY);
  panel.showLoaded();
}

async function loadMoreHistory() {
  historyLimit = Math.min(MAX_HISTORY, historyLimit + PAGE_SIZE);
  await resync();
}

// MARK: - Actions

async function cancelWholeBatch(id) {
  try {
    const batch = await cancelBatch(id);
    for (const job of batch.requests) store.upsert(job);
  } finally {
    await resync();
  }
}

async function cancel(id) {
  try {
    store.upsert(await cancelRequest(id));
  } finally {
    // Whatever happened (e.g. 409: it finished meanwhile), show the job's real state.
    await fetchJob(id);
  }
}

main();
