// One drop zone of the form (the portrait or the recording): choose or drop a file, preview it, check it.

import { formatBytes, formatMediaDuration } from "../format.js";
import {
  acceptAttribute, audioDurationProblem, imageDimensionsProblem, limitsInWords, typeOrSizeProblem,
} from "./file-checks.js";

const MISSING = { image: "Choose a portrait image.", audio: "Choose a speech recording." };
const METADATA_TIMEOUT_MS = 8000;

export class FilePicker {
  /**
   * @param {HTMLElement} root  the `.drop` element of index.html
   * @param {object} config  `GET /api/config`
   * @param {(files: File[], field: string) => void} onDrop  lets the page route dropped files to the pickers
   * @param {() => void} onChange
   */
  constructor(root, config, { onDrop, onChange }) {
    this.root = root;
    this.kind = root.dataset.kind;
    this.field = root.dataset.field ?? this.kind; // the form field it fills: image, audio or audio2
    this.isOptional = "optional" in root.dataset;
    this.config = config;
    this.onChange = onChange;
    this.input = root.querySelector("input[type=file]");
    this.preview = root.querySelector(".preview");
    this.message = root.querySelector(".field-message");
    this.file = null;
    this.problem = null; // a sentence when the chosen file cannot be sent
    this.checking = Promise.resolve();
    this.objectURL = null;
    this.more = []; // further recordings of a batch (speech zone only): one video each

    this.input.accept = acceptAttribute(this.kind, config);
    root.querySelector(".hint").textContent = limitsInWords(this.kind, config);
    // One file from the dialog; several recordings dropped together make a batch (GenerateForm.routeDrop).
    this.input.addEventListener("change", () => {
      if (this.input.files.length > 0) this.choose(this.input.files[0]);
    });
    root.querySelector("[data-action=remove]").addEventListener("click", () => {
      this.clear();
      this.input.focus();
    });
    this.listenForDrops(onDrop);
  }

  listenForDrops(onDrop) {
    let depth = 0; // dragenter/dragleave fire for every child element crossed
    this.root.addEventListener("dragenter", (event) => {
      event.preventDefault();
      depth += 1;
      this.root.classList.add("is-dragover");
    });
    this.root.addEventListener("dragover", (event) => {
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
    });
    this.root.addEventListener("dragleave", () => {
      depth = Math.max(0, depth - 1);
      if (depth === 0) this.root.classList.remove("is-dragover");
    });
    this.root.addEventListener("drop", (event) => {
      event.preventDefault();
      event.stopPropagation();
      depth = 0;
      this.root.classList.remove("is-dragover");
      const files = [...(event.dataTransfer?.files ?? [])];
      if (files.length > 0) onDrop(files, this.field);
    });
  }

  /**
   * Takes several recordings: the first is previewed and checked as usual, the others ride along (their type and
   * size checked here, the rest by the server) and make the submit a batch.
   */
  chooseMany(files) {
    this.choose(files[0]);
    this.more = files.slice(1).filter((file) => !typeOrSizeProblem(this.kind, file, this.config));
    this.showBatchNote(files.length - 1 - this.more.length);
  }

  showBatchNote(refused) {
    let note = this.root.querySelector(".batch-note");
    if (!note) {
      note = document.createElement("p");
      note.className = "batch-note hint";
      this.root.querySelector(".preview").after(note);
    }
    const names = this.more.map((file) => file.name).join(", ");
    const skipped = refused ? ` (${refused} other file${refused === 1 ? "" : "s"} could not be used)` : "";
    note.textContent = this.more.length
      ? `+ ${this.more.length} more recording${this.more.length === 1 ? "" : "s"}: ${names}. One video each, sent as one batch${skipped}.`
      : "";
    note.hidden = this.more.length === 0;
  }

  /** Takes a file from the input or a drop, checks it, and previews it. */
  choose(file) {
    this.more = [];
    this.root.querySelector(".batch-note")?.setAttribute("hidden", "");
    this.releasePreview();
    this.file = null;
    this.problem = null;
    const problem = typeOrSizeProblem(this.kind, file, this.config);
    if (problem) {
      this.input.value = "";
      this.showPreview(false);
      this.showMessage(problem, "error");
      this.onChange();
      return;
    }
    this.file = file;
    if (this.input.files[0] !== file) {
      // A dropped file: put it in the input too, so assistive technology announces the chosen name.
      const transfer = new DataTransfer();
      transfer.items.add(file);
      this.input.files = transfer.files;
    }
    this.objectURL = URL.createObjectURL(file);
    this.root.querySelector(".preview-name").textContent = file.name;
    this.setDetail(formatBytes(file.size));
    this.showPreview(true);
    this.showMessage("", null);
    this.checking = this.kind === "image" ? this.checkImage(file) : this.checkAudio(file);
    this.onChange();
  }

  async checkImage(file) {
    const image = this.root.querySelector(".preview-image");
    image.alt = `Preview of ${file.name}`;
    image.src = this.objectURL;
    try {
      await image.decode();
    } catch {
      if (this.file !== file) return;
      image.removeAttribute("src");
      this.showMessage("This browser cannot display the image; the server will check it when you submit.", "warning");
      return;
    }
    if (this.file !== file) return;
    const size = { width: image.naturalWidth, height: image.naturalHeight };
    this.setDetail(`${size.width} × ${size.height} px · ${formatBytes(file.size)}`);
    this.refuseIf(imageDimensionsProblem(size, this.config.limits));
  }

  async checkAudio(file) {
    const audio = this.root.querySelector(".preview-audio");
    const duration = await new Promise((resolve) => {
      const finish = (value) => {
        clearTimeout(timer);
        audio.removeEventListener("loadedmetadata", onMetadata);
        audio.removeEventListener("error", onError);
        resolve(value);
      };
      const onMetadata = () => finish(audio.duration);
      const onError = () => finish(null);
      const timer = setTimeout(() => finish(null), METADATA_TIMEOUT_MS);
      audio.addEventListener("loadedmetadata", onMetadata);
      audio.addEventListener("error", onError);
      audio.src = this.objectURL;
    });
    if (this.file !== file) return;
    if (duration === null || !Number.isFinite(duration)) {
      if (duration === null) audio.removeAttribute("src");
      this.showMessage("This browser cannot read the recording's length; the server will check it when you submit.",
                       "warning");
      return;
    }
    this.setDetail(`${formatMediaDuration(duration)} · ${formatBytes(file.size)}`);
    this.root.dataset.duration = String(duration);
    this.refuseIf(audioDurationProblem(duration, this.config.limits));
  }

  refuseIf(problem) {
    if (!problem) return;
    this.problem = problem;
    this.showMessage(problem, "error");
    this.onChange();
  }

  /** The file to send, or a sentence saying why there is none; waits for the checks still running. */
  async validate() {
    await this.checking;
    if (this.problem) return { problem: this.problem };
    if (!this.file && this.isOptional && this.message.dataset.tone !== "error") return { file: null };
    if (!this.file) {
      const problem = this.message.dataset.tone === "error" ? this.message.textContent : MISSING[this.kind];
      this.showMessage(problem, "error");
      return { problem };
    }
    return { file: this.file };
  }

  /** Shows the server's refusal next to this file. */
  showServerProblem(message) {
    this.showMessage(message, "error");
  }

  clear() {
    this.more = [];
    this.root.querySelector(".batch-note")?.setAttribute("hidden", "");
    this.releasePreview();
    this.file = null;
    this.problem = null;
    this.input.value = "";
    this.showPreview(false);
    this.showMessage("", null);
    this.onChange();
  }

  focus() {
    this.input.focus();
  }

  releasePreview() {
    if (this.objectURL) URL.revokeObjectURL(this.objectURL);
    this.objectURL = null;
    delete this.root.dataset.duration;
    const media = this.root.querySelector(".preview-image, .preview-audio");
    media.removeAttribute("src");
    if (media instanceof HTMLMediaElement) media.load();
  }

  showPreview(visible) {
    this.preview.hidden = !visible;
    this.root.classList.toggle("has-file", visible);
  }

  setDetail(text) {
    this.root.querySelector(".preview-detail").textContent = text;
  }

  showMessage(text, tone) {
    this.message.textContent = text;
    if (tone) this.message.dataset.tone = tone;
    else delete this.message.dataset.tone;
    this.input.setAttribute("aria-invalid", String(tone === "error"));
  }
}
