// The LoRA choice of the options (engines with a LoRA library: `GET /api/config` → the `loras` parameter, and
// `GET /api/loras` for each file's details): up to `count` LoRAs, each with a strength slider. Files that do not fit
// the engine's model are shown, disabled, with the reason.

import { getLoras } from "../api.js";

export class LoraOptions {
  /** @param {object} spec  the `loras` parameter spec, or undefined (then nothing is shown) */
  constructor(spec) {
    this.spec = spec;
    this.field = document.getElementById("loras-field");
    this.list = document.getElementById("loras-list");
    this.rows = [];
    this.field.hidden = !spec || !(spec.choices?.length > 0);
    if (!this.field.hidden) this.build();
  }

  async build() {
    let details = new Map();
    try {
      details = new Map((await getLoras()).loras.map((lora) => [lora.name, lora]));
    } catch {
      // The list still works from the names alone.
    }
    this.rows = this.spec.choices.map((name) => this.row(name, details.get(name)));
    this.list.replaceChildren(...this.rows.map((row) => row.element));
  }

  row(name, detail) {
    const element = document.createElement("li");
    element.className = "lora";
    const check = document.createElement("input");
    check.type = "checkbox";
    check.id = `lora-${name}`;
    check.dataset.lora = name;
    const label = document.createElement("label");
    label.htmlFor = check.id;
    label.textContent = detail ? `${name} (rank ${detail.rank})` : name;
    const slider = document.createElement("input");
    slider.type = "range";
    slider.min = String(this.spec.minimum ?? 0);
    slider.max = String(this.spec.maximum ?? 2);
    slider.step = "0.05";
    slider.value = "1";
    slider.disabled = true;
    slider.setAttribute("aria-label", `Strength of ${name}`);
    const value = document.createElement("output");
    value.textContent = "1.00";
    slider.addEventListener("input", () => { value.textContent = Number(slider.value).toFixed(2); });
    check.addEventListener("change", () => {
      slider.disabled = !check.checked;
      this.limitChoices();
    });
    element.append(check, label, slider, value);
    if (detail && !detail.fits) {
      check.disabled = true;
      element.classList.add("is-unfit");
      const reason = document.createElement("span");
      reason.className = "hint";
      reason.textContent = `Does not fit this model: ${detail.reason}`;
      element.append(reason);
    }
    return { name, element, check, slider, fits: !detail || detail.fits };
  }

  /** At most `count` LoRAs: the others are disabled while that many are chosen. */
  limitChoices() {
    const chosen = this.rows.filter((row) => row.check.checked).length;
    for (const row of this.rows) {
      if (!row.check.checked && row.fits) row.check.disabled = chosen >= (this.spec.count ?? 3);
    }
  }

  /** The `loras` form value (JSON), or null when none is chosen. */
  value() {
    const chosen = this.rows
      .filter((row) => row.check.checked)
      .map((row) => ({ name: row.name, scale: Number(row.slider.value) }));
    return chosen.length > 0 ? JSON.stringify(chosen) : null;
  }
}
