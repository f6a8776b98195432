// The page's API key when the server has auth on (`GET /api/config` → `auth.enabled`). It lives in one cookie,
// `infinitetalk_key`, which the browser then sends with every request of this page: fetches, the upload, the video
// and its live stream, and the WebSocket (a browser cannot put headers on a WebSocket). `SameSite=Strict` keeps
// other sites' requests from carrying it; it stays until the person signs out.

const COOKIE = "infinitetalk_key";
const ONE_YEAR_S = 365 * 24 * 3600;

function cookiePath() {
  return new URL(".", document.baseURI).pathname;
}

function writeCookie(value, maxAgeSeconds) {
  const secure = location.protocol === "https:" ? "; Secure" : "";
  document.cookie = `${COOKIE}=${value}; Max-Age=${maxAgeSeconds}; Path=${cookiePath()}; SameSite=Strict${secure}`;
}

export function hasKey() {
  return document.cookie.split(";").some((part) => part.trim().startsWith(`${COOKIE}=`));
}

/** Keeps `key` (letters and digits only, as the server makes them) for this page. */
export function signIn(key) {
  writeCookie(encodeURIComponent(key.trim()), ONE_YEAR_S);
}

export function signOut() {
  writeCookie("", 0);
}
