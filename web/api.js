// The service's public HTTP API (docs/api.md): one function per endpoint the page uses.
// Paths are relative to the page, so the service can sit behind a reverse proxy under a prefix.

/** An error answered by the server (`{"error": {"code", "message", "field"}}`) or a network failure. */
export class ApiError extends Error {
  constructor({ status, code, message, field = null, retryAfterSeconds = null }) {
    super(message);
    this.name = "ApiError";
    this.status = status; // 0 when the server could not be reached
    this.code = code;
    this.field = field;
    this.retryAfterSeconds = retryAfterSeconds;
  }

  /** Builds the error from a non-2xx answer; the server's message is kept verbatim. */
  static fromResponse(status, bodyText, retryAfterHeader) {
    let detail = null;
    try {
      detail = JSON.parse(bodyText)?.error ?? null;
    } catch {
      // Not our JSON (e.g. a proxy's HTML page): fall through to a generic message.
    }
    const retryAfterSeconds = retryAfterHeader ? Number(retryAfterHeader) || null : null;
    if (detail && typeof detail.message === "string") {
      return new ApiError({ status, code: detail.code ?? "unknown", message: detail.message,
                            field: detail.field ?? null, retryAfterSeconds });
    }
    const excerpt = bodyText.trim().slice(0, 200);
    return new ApiError({ status, code: `http_${status}`,
                          message: `The server answered HTTP ${status}${excerpt ? `: ${excerpt}` : "."}`,
                          retryAfterSeconds });
  }

  static network() {
    return new ApiError({ status: 0, code: "network_error",
                          message: "Cannot reach the server. Check that it is running and try again." });
  }
}

const pageBase = new URL(".", document.baseURI);

/** An absolute URL for a path of the service (`api/queue`, `/api/result/…`, `ws`). */
export function serviceURL(path) {
  return new URL(path.replace(/^\//, ""), pageBase);
}

async function requestJSON(path, options = {}) {
  let response;
  try {
    response = await fetch(serviceURL(path), { headers: { Accept: "application/json" }, ...options });
  } catch {
    throw ApiError.network();
  }
  const text = await response.text();
  if (!response.ok) {
    const error = ApiError.fromResponse(response.status, text, response.headers.get("Retry-After"));
    // The key is missing, unknown or was revoked: the page asks for one (app.js listens).
    if (response.status === 401) window.dispatchEvent(new CustomEvent("unauthorized", { detail: error }));
    throw error;
  }
  return text ? JSON.parse(text) : null;
}

const idPath = (id) => encodeURIComponent(id);

export const getConfig = () => requestJSON("api/config");
export const getQueue = () => requestJSON("api/queue");
export const getLoras = () => requestJSON("api/loras");
export const getStatus = (id) => requestJSON(`api/status/${idPath(id)}`);
export const cancelRequest = (id) => requestJSON(`api/cancel/${idPath(id)}`, { method: "POST" });
export const cancelBatch = (id) => requestJSON(`api/batches/${idPath(id)}`, { method: "DELETE" });
export const listRequests = ({ limit = 20, offset = 0 } = {}) =>
  requestJSON(`api/requests?limit=${limit}&offset=${offset}`);

/**
 * Submits `POST /api/generate` (or, with `path`, `POST /api/batches`: several `audio` parts, one video each). Uses XMLHttpRequest rather than fetch because only XHR reports upload progress,
 * which matters for a 50 MB recording on a slow link.
 * @param {FormData} form
 * @param {(fraction: number) => void} onUploadProgress
 * @returns {Promise<object>} the queued request's status object
 */
export function submitGenerate(form, onUploadProgress = () => {}, path = "api/generate") {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", serviceURL(path));
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onUploadProgress(event.loaded / event.total);
    });
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        try {
          resolve(JSON.parse(xhr.responseText));
        } catch {
          reject(ApiError.fromResponse(xhr.status, xhr.responseText, null));
        }
      } else {
        reject(ApiError.fromResponse(xhr.status, xhr.responseText, xhr.getResponseHeader("Retry-After")));
      }
    });
    // A server that refuses an oversized upload may close the connection before the browser reads its answer;
    // the browser then reports only a network error.
    xhr.addEventListener("error", () => reject(new ApiError({
      status: 0, code: "network_error",
      message: "The upload did not complete: the server could not be reached or closed the connection.",
    })));
    xhr.send(form);
  });
}
