// The generation options: resolution, prompt, and (under "Advanced") seed, steps and negative prompt.
// Each is checked against the engine's parameter schema (`GET /api/config` → `parameters`: type, choices, range,
// length, default), the same one the server checks uploads against, so mistakes show before uploading.

import { elementsById } from "./elements.js";
import { LoraOptions } from "./lora-options.js";

/** The form's inputs, by parameter name. A parameter the engine does not declare has its field hidden. */
const FIELDS = {
  resolution: { label: "The resolution" },
  prompt: { id: "prompt-input", label: "The prompt" },
  seed: { id: "seed-input", label: "The seed", emptyMeans: "or empty for a random one" },
  steps: { id: "steps-input", label: "Steps" },
  negative_prompt: { id: "negative-prompt-input", label: "The negative prompt" },
};

/**
 * The parameters by name. Empty before the engine's first hello (the server then refuses jobs, and the form shows
 * no options).
 */
export function parameterSpecs(config) {
  return new Map((config.parameters ?? []).map((spec) => [spec.name, spec]));
}

/**
 * Why `text` (trimmed, not empty) does not fit `spec`, in words, or null. Integers are whole numbers; numbers may
 * have decimals; strings have a length limit or a list of choices.
 */
export function problemWith(text, spec, label, emptyMeans = null) {
  const or = emptyMeans ? `, ${emptyMeans}` : "";
  if (spec.type === "integer" || spec.type === "number") {
    const pattern = spec.type === "integer" ? /^-?\d+$/ : /^-?(\d+\.?\d*|\.\d+)$/;
    const value = Number(text);
    const tooLow = spec.minimum !== undefined && value < spec.minimum;
    const tooHigh = spec.maximum !== undefined && value > spec.maximum;
    if (!pattern.test(text) || tooLow || tooHigh) {
      const kind = spec.type === "integer" ? "a whole number" : "a number";
      const range = spec.minimum !== undefined && spec.maximum !== undefined
        ? ` from ${spec.minimum} to ${spec.maximum}`
        : spec.minimum !== undefined ? ` of at least ${spec.minimum}` : spec.maximum !== undefined
          ? ` of at most ${spec.maximum}` : "";
      return `${label} must be ${kind}${range}${or}.`;
    }
    return null;
  }
  if (spec.choices && !spec.choices.includes(text)) return `${label} must be one of ${spec.choices.join(", ")}.`;
  if (spec.max_length !== undefined && text.length > spec.max_length) {
    return `${label} has ${text.length} characters; the limit is ${spec.max_length}.`;
  }
  return null;
}

export class OptionsForm {
  /** @param {HTMLFormElement} form  @param {object} config  `GET /api/config` */
  constructor(form, config) {
    this.form = form;
    this.config = config;
    this.specs = parameterSpecs(config);
    this.advanced = form.querySelector("details.advanced");
    Object.assign(this, elementsById({
      prompt: "prompt-input",
      negativePrompt: "negative-prompt-input",
      seed: "seed-input",
      steps: "steps-input",
      promptCount: "prompt-count",
    }, form));
    this.buildResolutionChoices();
    this.loras = new LoraOptions(this.specs.get("loras"));

    // A field for a parameter this engine does not take is not shown (and never sent).
    for (const [name, { id }] of Object.entries(FIELDS)) {
      if (id) form.querySelector(`#${id}`).closest(".field").hidden = !this.specs.has(name);
    }
    const prompt = this.specs.get("prompt");
    if (prompt?.default) this.prompt.placeholder = prompt.default;
    const steps = this.specs.get("steps");
    if (steps) {
      const engineDecides = steps.default === null ? "the engine's default" : `the engine's default (${steps.default})`;
      this.steps.placeholder = steps.default === null ? "" : String(steps.default);
      form.querySelector("#steps-hint").textContent = `${steps.minimum} to ${steps.maximum}; empty uses ${engineDecides}.`;
    }
    this.prompt.addEventListener("input", () => this.updatePromptCount());
    this.updatePromptCount();
    // Clear a field's error as soon as it is edited; it is checked again on submit.
    for (const input of [this.prompt, this.negativePrompt, this.seed, this.steps]) {
      input.addEventListener("input", () => this.showProblem(input, null));
    }
  }

  buildResolutionChoices() {
    const spec = this.specs.get("resolution");
    const container = this.form.querySelector("#resolution-choices");
    container.closest(".field").hidden = !spec;
    container.replaceChildren(...(spec?.choices ?? []).map((resolution) => {
      const label = document.createElement("label");
      label.className = "segment";
      const radio = document.createElement("input");
      radio.type = "radio";
      radio.name = "resolution";
      radio.value = resolution;
      radio.checked = resolution === spec.default;
      label.append(radio, document.createTextNode(resolution));
      return label;
    }));
  }

  updatePromptCount() {
    const maxLength = this.specs.get("prompt")?.max_length;
    const length = this.prompt.value.length;
    this.promptCount.textContent = maxLength === undefined ? `${length}` : `${length} / ${maxLength}`;
    this.promptCount.classList.toggle("is-over", maxLength !== undefined && length > maxLength);
  }

  /**
   * Reads and checks every option against its parameter's spec.
   * @returns {{values: Record<string, string>, problems: {input: HTMLElement, message: string}[]}}
   *   `values` holds only the fields to send (empty ones are left to the server's defaults).
   */
  validate() {
    const values = {};
    const problems = [];
    for (const [name, { label, emptyMeans }] of Object.entries(FIELDS)) {
      const spec = this.specs.get(name);
      const input = this.inputForField(name);
      if (!spec || !input) continue;
      const text = name === "resolution"
        ? this.form.querySelector("input[name=resolution]:checked")?.value ?? ""
        : input.value.trim();
      this.showProblem(input, null);
      if (!text) continue;
      const problem = problemWith(text, spec, label, emptyMeans);
      if (problem) {
        problems.push({ input, message: problem });
        this.showProblem(input, problem);
      } else {
        values[name] = spec.type === "integer" || spec.type === "number" ? String(Number(text)) : text;
      }
    }
    const loras = this.loras.value();
    if (loras) values.loras = loras;
    // A problem hidden in the closed "Advanced" section must be visible to be fixed.
    if (problems.some(({ input }) => this.advanced.contains(input))) this.advanced.open = true;
    return { values, problems };
  }

  /** The input for a server error's `field`, if the form has one. */
  inputForField(field) {
    if (field === "resolution") return this.form.querySelector("input[name=resolution]");
    const id = FIELDS[field]?.id;
    return id ? this.form.querySelector(`#${id}`) : null;
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
