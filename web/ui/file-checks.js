// Client-side checks of a chosen file against the server's limits (`GET /api/config`). They only save a pointless
// upload: the server checks everything again and its answer is the one that counts.

import { formatBytes, formatLimitSeconds, formatMediaDuration } from "../format.js";

// File name extensions per format name used in `image_formats` / `audio_formats`; browsers leave `File.type`
// empty for some files, so the extension is the fallback.
const EXTENSIONS = {
  jpeg: ["jpg", "jpeg", "jpe", "jfif"],
  png: ["png"],
  webp: ["webp"],
  wav: ["wav", "wave"],
  mp3: ["mp3"],
  m4a: ["m4a", "aac", "mp4"],
  ogg: ["ogg", "oga", "opus"],
  flac: ["flac"],
};

const FORMAT_LABELS = {
  jpeg: "JPEG", png: "PNG", webp: "WebP", wav: "WAV", mp3: "MP3", m4a: "M4A/AAC", ogg: "OGG", flac: "FLAC",
};

const NOUN = { image: "image", audio: "recording" };

function formatsOf(kind, config) {
  return kind === "image" ? config.image_formats : config.audio_formats;
}

function mimeTypesOf(kind, config) {
  return kind === "image" ? config.image_mime_types : config.audio_mime_types;
}

function maxBytesOf(kind, config) {
  return kind === "image" ? config.limits.max_image_bytes : config.limits.max_audio_bytes;
}

function listInWords(items) {
  if (items.length <= 1) return items.join("");
  return `${items.slice(0, -1).join(", ")} or ${items.at(-1)}`;
}

/** `"JPEG, PNG or WebP"`: the accepted formats in words. */
export function acceptedFormatsInWords(kind, config) {
  return listInWords(formatsOf(kind, config).map((format) => FORMAT_LABELS[format] ?? format.toUpperCase()));
}

/** The file input's `accept` attribute: MIME types plus extensions. */
export function acceptAttribute(kind, config) {
  const extensions = formatsOf(kind, config).flatMap((format) => EXTENSIONS[format] ?? [format]);
  return [...mimeTypesOf(kind, config), ...extensions.map((extension) => `.${extension}`)].join(",");
}

/** The hint under a drop zone, e.g. `"JPEG, PNG or WebP · up to 10 MB · 64 to 4096 pixels a side"`. */
export function limitsInWords(kind, config) {
  const { limits } = config;
  const parts = [acceptedFormatsInWords(kind, config), `up to ${formatBytes(maxBytesOf(kind, config))}`];
  if (kind === "image") {
    parts.push(`${limits.min_image_side} to ${Math.max(limits.max_image_width, limits.max_image_height)} pixels a side`);
  } else {
    parts.push(`${formatLimitSeconds(limits.min_audio_seconds)} to ${formatLimitSeconds(limits.max_audio_seconds)} long`);
  }
  return parts.join(" · ");
}

/** The format name a file seems to be, judged by its MIME type then its extension; null if none fits. */
export function guessFormat(kind, file, config) {
  if (mimeTypesOf(kind, config).includes(file.type)) return file.type;
  const extension = file.name.includes(".") ? file.name.split(".").pop().toLowerCase() : "";
  return formatsOf(kind, config).find((format) => (EXTENSIONS[format] ?? [format]).includes(extension)) ?? null;
}

/** Which drop zone a dropped file belongs to, or null. */
export function kindOfFile(file, config) {
  return ["image", "audio"].find((kind) => guessFormat(kind, file, config) !== null) ?? null;
}

/** A sentence saying why the file's type or size is refused, or null when both are acceptable. */
export function typeOrSizeProblem(kind, file, config) {
  if (guessFormat(kind, file, config) === null) {
    return `“${file.name}” is not a supported ${NOUN[kind]}: choose ${acceptedFormatsInWords(kind, config)}.`;
  }
  if (file.size === 0) return `“${file.name}” is empty.`;
  const maxBytes = maxBytesOf(kind, config);
  if (file.size > maxBytes) {
    return `“${file.name}” is ${formatBytes(file.size)}; the limit is ${formatBytes(maxBytes)}.`;
  }
  return null;
}

/** A sentence saying why the image's pixel size is refused, or null. */
export function imageDimensionsProblem({ width, height }, limits) {
  if (width > limits.max_image_width || height > limits.max_image_height) {
    return `The image is ${width} × ${height} pixels; the limit is ${limits.max_image_width} × ${limits.max_image_height}.`;
  }
  if (Math.min(width, height) < limits.min_image_side) {
    return `The image is ${width} × ${height} pixels; each side needs at least ${limits.min_image_side}.`;
  }
  return null;
}

/** A sentence saying why the recording's length is refused, or null. */
export function audioDurationProblem(seconds, limits) {
  if (seconds < limits.min_audio_seconds) {
    return `The recording is ${formatMediaDuration(seconds)}; it needs at least ${formatLimitSeconds(limits.min_audio_seconds)}.`;
  }
  if (seconds > limits.max_audio_seconds) {
    return `The recording is ${formatMediaDuration(seconds)}; the limit is ${formatLimitSeconds(limits.max_audio_seconds)}.`;
  }
  return null;
}
