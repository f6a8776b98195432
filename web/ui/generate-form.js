// The "New video" form: the file pickers (portrait, speech, and a second speaker when the engine can) and the
// options, checked locally, then sent to `POST /api/generate`.
// When the server refuses, its message is shown exactly as it sent it, next to the field it names.

import { submitGenerate } from "../api.js";
import { shortId } from "../format.js";
import { kindOfFile } from "./file-checks.js";
import { FilePicker } from "./file-picker.js";
import { OptionsForm } from "./options.js";
import { elementsById } from "./elements.js";

export class GenerateForm {
  /**
   * @param {object} config  `GET /api/config`
   * @param {(answer: object) => void} onQueued  receives the generate answer (a status object)
   */
  constructor(config, { onQueued }) {
    this.config = config;
    this.onQueued = onQueued;
    Object.assign(this, elementsById({
      form: "generate-form",
      button: "submit-button",
      status: "submit-status",
      errorBox: "form-error",
    }));
    this.busy = false;
    const handlers = { onDrop: (files, kind) => this.routeDrop(files, kind), onChange: () => this.hideError() };
    this.pickers = {
      image: new FilePicker(document.getElementById("image-drop"), config, handlers),
      audio: new FilePicker(document.getElementById("audio-drop"), config, handlers),
    };
    // A second speaker only where the engine can animate two people.
    const secondSpeaker = document.getElementById("audio2-drop");
    if (config.engine?.two_speakers) {
      secondSpeaker.hidden = false;
      this.pickers.audio2 = new FilePicker(secondSpeaker, config, handlers);
    }
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

  /**
   * One file goes to the zone it was dropped on; several (or one outside the zones) go by their type, a second
   * recording to the second speaker when that zone is shown.
   */
  routeDrop(files, zoneField) {
    // More recordings than speech zones: a batch, one video per recording with the one portrait.
    const recordings = files.filter((file) => kindOfFile(file, this.config) === "audio");
    const speechZones = Object.values(this.pickers).filter((picker) => picker.kind === "audio");
    if (recordings.length > speechZones.length) {
      const image = files.find((file) => kindOfFile(file, this.config) === "image");
      if (image) this.pickers.image.choose(image);
      this.pickers.audio2?.clear();
      this.pickers.audio.chooseMany(recordings);
      return;
    }
    if (files.length === 1 && zoneField) {
      this.pickers[zoneField].choose(files[0]);
      return;
    }
    const free = Object.keys(this.pickers);
    for (const file of files) {
      const kind = kindOfFile(file, this.config) ?? this.pickers[zoneField]?.kind;
      const field = free.find((name) => this.pickers[name].kind === kind);
      if (field) {
        free.splice(free.indexOf(field), 1);
        this.pickers[field].choose(file);
      }
    }
  }

  async submit() {
    if (this.busy) return;
    this.hideError();
    this.status.textContent = "Checking…";
    const { form, firstProblem, videos } = await this.collect();
    if (firstProblem) {
      this.status.textContent = "Please fix the marked fields.";
      firstProblem.focus();
      return;
    }

    this.setBusy(true);
    this.status.textContent = "Uploading…";
    try {
      const answer = await submitGenerate(form, (fraction) => {
        this.status.textContent = fraction < 1 ? `Uploading ${Math.floor(fraction * 100)}%` : "Checking the files…";
      }, videos > 1 ? "api/batches" : "api/generate");
      if (videos > 1) {
        for (const request of answer.requests) this.onQueued({ ...request, batch_id: answer.batch_id });
        this.status.textContent = `Batch of ${videos} videos queued.`;
        return;
      }
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

  /** Checks every field; returns the form to send, or the first field with a problem (each is marked). */
  async collect() {
    const fields = Object.keys(this.pickers); // image, audio, and audio2 when shown
    const files = await Promise.all(fields.map((field) => this.pickers[field].validate()));
    const { values, problems } = this.options.validate();
    const badFile = fields.find((field, index) => files[index].problem);
    const firstProblem = badFile ? this.pickers[badFile] : problems[0]?.input;
    if (firstProblem) return { firstProblem };
    const form = new FormData();
    fields.forEach((field, index) => {
      const { file } = files[index];
      if (file) form.append(field, file, file.name);
    });
    const more = this.pickers.audio.more;
    for (const file of more) form.append("audio", file, file.name);
    for (const [field, value] of Object.entries(values)) form.append(field, value);
    return { form, videos: 1 + more.length };
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
