// The generation options: resolution, prompt, and (under "Advanced") seed, steps and negative prompt.
// Each is checked against the same rules as the server (docs/api.md), so mistakes show before uploading.

const MAX_SEED = 2147483647;

export class OptionsForm {
  /** @param {HTMLFormElement} form  @param {object} config  `GET /api/config` */
  constructor(form, config) {
    this.form = form;
    this.config = config;
    this.advanced = form.querySelector("details.advanced");
    this.prompt = form.querySelector("#prompt-input");
    this.negativePrompt = form.querySelector("#negative-prompt-input");
    this.seed = form.querySelector("#seed-input");
    this.steps = form.querySelector("#steps-input");
    this.promptCount = form.querySelector("#prompt-count");
    this.buildResolutionChoices();

    const maxLength = config.limits.max_prompt_length;
    this.prompt.placeholder = config.defaults.prompt;
    this.steps.placeholder = String(config.steps.default);
    form.querySelector("#steps-hint").textContent =
      `${config.steps.min} to ${config.steps.max}; empty uses the engine's default (${config.steps.default}).`;
    this.prompt.addEventListener("input", () => this.updatePromptCount(maxLength));
    this.updatePromptCount(maxLength);
    // Clear a field's error as soon as it is edited; it is checked again on submit.
    for (const input of [this.prompt, this.negativePrompt, this.seed, this.steps]) {
      input.addEventListener("input", () => this.showProblem(input, null));
    }
  }

  buildResolutionChoices() {
    const container = this.form.querySelector("#resolution-choices");
    container.replaceChildren(...this.config.resolutions.map((resolution) => {
      const label = document.createElement("label");
      label.className = "segment";
      const radio = document.createElement("input");
      radio.type = "radio";
      radio.name = "resolution";
      radio.value = resolution;
      radio.checked = resolution === this.config.defaults.resolution;
      label.append(radio, document.createTextNode(resolution));
      return label;
    }));
  }

  updatePromptCount(maxLength) {
    const length = this.prompt.value.length;
    this.promptCount.textContent = `${length} / ${maxLength}`;
    this.promptCount.classList.toggle("is-over", length > maxLength);
  }

  /**
   * Reads and checks every option.
   * @returns {{values: Record<string, string>, problems: {input: HTMLElement, message: string}[]}}
   *   `values` holds only the fields to send (empty ones are left to the server's defaults).
   */
  validate() {
    const values = {};
    const problems = [];
    const refuse = (input, message) => {
      problems.push({ input, message });
      this.showProblem(input, message);
    };
    const maxLength = this.config.limits.max_prompt_length;

    const resolution = this.form.querySelector("input[name=resolution]:checked")?.value;
    if (resolution) values.resolution = resolution;

    for (const [input, field, name] of [[this.prompt, "prompt", "The prompt"],
                                        [this.negativePrompt, "negative_prompt", "The negative prompt"]]) {
      const text = input.value.trim();
      this.showProblem(input, null);
      if (text.length > maxLength) refuse(input, `${name} has ${text.length} characters; the limit is ${maxLength}.`);
      else if (text) values[field] = text;
    }

    const seed = this.seed.value.trim();
    this.showProblem(this.seed, null);
    if (seed) {
      if (!/^\d+$/.test(seed) || Number(seed) > MAX_SEED) {
        refuse(this.seed, `The seed must be a whole number from 0 to ${MAX_SEED}, or empty for a random one.`);
      } else {
        values.seed = String(Number(seed));
      }
    }

    const steps = this.steps.value.trim();
    const { min, max } = this.config.steps;
    this.showProblem(this.steps, null);
    if (steps) {
      if (!/^\d+$/.test(steps) || Number(steps) < min || Number(steps) > max) {
        refuse(this.steps, `Steps must be a whole number from ${min} to ${max}.`);
      } else {
        values.steps = String(Number(steps));
      }
    }

    // A problem hidden in the closed "Advanced" section must be visible to be fixed.
    if (problems.some(({ input }) => this.advanced.contains(input))) this.advanced.open = true;
    return { values, problems };
  }

  /** The input for a server error's `field`, if the form has one. */
  inputForField(field) {
    return {
      prompt: this.prompt, negative_prompt: this.negativePrompt, seed: this.seed, steps: this.steps,
      resolution: this.form.querySelector("input[name=resolution]"),
    }[field] ?? null;
  }

  /** Shows (or with `null`, clears) a problem under an input. */
  showProblem(input, message) {
    const messageId = input.name === "resolution" ? "resolution-message" : `${input.id.replace(/-input$/, "")}-message`;
    const element = this.form.querySelector(`#${messageId}`);
    element.textContent = message ?? "";
    if (message) element.dataset.tone = "error";
    else delete element.dataset.tone;
    input.setAttribute("aria-invalid", String(Boolean(message)));
    if (message && this.advanced.contains(input)) this.advanced.open = true;
  }
}
