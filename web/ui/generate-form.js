// The "New video" form: two file pickers and the options, checked locally, then sent to `POST /api/generate`.
// When the server refuses, its message is shown exactly as it sent it, next to the field it names.

import { submitGenerate } from "../api.js";
import { shortId } from "../format.js";
import { kindOfFile } from "./file-checks.js";
import { FilePicker } from "./file-picker.js";
import { OptionsForm } from "./options.js";

export class GenerateForm {
  /**
   * @param {object} config  `GET /api/config`
   * @param {(answer: object) => void} onQueued  receives the generate answer (a status object)
   */
  constructor(config, { onQueued }) {
    this.config = config;
    this.onQueued = onQueued;
    this.form = document.getElementById("generate-form");
    this.button = document.getElementById("submit-button");
    this.status = document.getElementById("submit-status");
    this.errorBox = document.getElementById("form-error");
    this.busy = false;
    const handlers = { onDrop: (files, kind) => this.routeDrop(files, kind), onChange: () => this.hideError() };
    this.pickers = {
      image: new FilePicker(document.getElementById("image-drop"), config, handlers),
      audio: new FilePicker(document.getElementById("audio-drop"), config, handlers),
    };
    this.options = new OptionsForm(this.form, config);
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    this.acceptDropsAnywhere();
  }

  // A file dropped outside the zones would make the browser navigate away to it: route it instead.
  acceptDropsAnywhere() {
    window.addEventListener("dragover", (event) => event.preventDefault());
    window.addEventListener("drop", (event) => {
      event.preventDefault();
      const files = [...(event.dataTransfer?.files ?? [])];
      if (files.length > 0) this.routeDrop(files, null);
    });
  }

  /** One file goes to the zone it was dropped on; several (or one outside the zones) go by their type. */
  routeDrop(files, zoneKind) {
    if (files.length === 1 && zoneKind) {
      this.pickers[zoneKind].choose(files[0]);
      return;
    }
    const taken = new Set();
    for (const file of files) {
      const kind = kindOfFile(file, this.config) ?? zoneKind;
      if (kind && !taken.has(kind)) {
        taken.add(kind);
        this.pickers[kind].choose(file);
      }
    }
  }

  async submit() {
    if (this.busy) return;
    this.hideError();
    this.status.textContent = "Checking…";
    const [image, audio] = await Promise.all([this.pickers.image.validate(), this.pickers.audio.validate()]);
    const { values, problems } = this.options.validate();
    const firstProblem = image.problem ? this.pickers.image : audio.problem ? this.pickers.audio : problems[0]?.input;
    if (firstProblem) {
      this.status.textContent = "Please fix the marked fields.";
      firstProblem.focus();
      return;
    }

    const form = new FormData();
    form.append("image", image.file, image.file.name);
    form.append("audio", audio.file, audio.file.name);
    for (const [field, value] of Object.entries(values)) form.append(field, value);

    this.setBusy(true);
    this.status.textContent = "Uploading…";
    try {
      const answer = await submitGenerate(form, (fraction) => {
        this.status.textContent = fraction < 1 ? `Uploading ${Math.floor(fraction * 100)}%` : "Checking the files…";
      });
      const position = answer.position_in_queue ? `, position ${answer.position_in_queue} in the queue` : "";
      this.status.textContent = `Video ${shortId(answer.request_id)} queued${position}. `;
      this.onQueued(answer);
      // On a phone the jobs list is below the form: offer a way there.
      const follow = document.createElement("a");
      follow.href = `#job-${answer.request_id}`;
      follow.textContent = "See its progress";
      this.status.append(follow);
    } catch (error) {
      this.status.textContent = "";
      this.showError(error);
    } finally {
      this.setBusy(false);
    }
  }

  setBusy(busy) {
    this.busy = busy;
    // aria-disabled rather than disabled: a disabled button would drop the keyboard focus.
    this.button.setAttribute("aria-disabled", String(busy));
    this.button.textContent = busy ? "Sending…" : "Generate video";
  }

  /** Shows a refusal: the server's own message, word for word, and next to the field it names. */
  showError(error) {
    const retry = error.retryAfterSeconds ? ` Try again in ${error.retryAfterSeconds} s.` : "";
    document.getElementById("form-error-title").textContent = error.status === 0
      ? "The request did not reach the server."
      : `The server refused the request.${retry}`;
    document.getElementById("form-error-message").textContent = error.message;
    document.getElementById("form-error-code").textContent = error.code ? `Error code: ${error.code}` : "";
    this.errorBox.hidden = false;
    const picker = this.pickers[error.field];
    const input = picker ? null : this.options.inputForField(error.field);
    if (picker) picker.showServerProblem(error.message);
    else if (input) this.options.showProblem(input, error.message);
  }

  hideError() {
    this.errorBox.hidden = true;
  }
}
