// Small formatters for what the page shows people: sizes, durations, times.

/** `10485760` -> `"10 MB"`, `1536` -> `"1.5 KB"` (binary units, as the server's limits are). */
export function formatBytes(bytes) {
  const units = ["bytes", "KB", "MB", "GB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const digits = unit === 0 || value >= 100 || Number.isInteger(value) ? 0 : 1;
  return `${value.toFixed(digits)} ${units[unit]}`;
}

/** `9.48` -> `"9.5 s"`, `125` -> `"2:05"`, for media lengths. */
export function formatMediaDuration(seconds) {
  if (!Number.isFinite(seconds)) return "unknown length";
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const whole = Math.round(seconds);
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, "0")}`;
}

/** A rough, honest time left: `"about 40 s"`, `"about 3 min"`. */
export function formatEta(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return null;
  if (seconds < 5) return "a few seconds";
  if (seconds < 60) return `about ${Math.round(seconds / 5) * 5} s`;
  if (seconds < 3600) return `about ${Math.round(seconds / 60)} min`;
  const hours = seconds / 3600;
  return `about ${hours.toFixed(hours < 10 ? 1 : 0)} h`;
}

/** Local clock time of an ISO timestamp; the date too when it is not today. */
export function formatWhen(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const time = date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  if (date.toDateString() === new Date().toDateString()) return time;
  return `${date.toLocaleDateString([], { month: "short", day: "numeric" })}, ${time}`;
}

/** `"0.5"` -> `"0.5 s"`, `600` -> `"10 min"`: limits in words. */
export function formatLimitSeconds(seconds) {
  if (seconds >= 60 && seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}

/** The first block of a UUID, enough to tell jobs apart at a glance. */
export const shortId = (id) => String(id).split("-")[0];
