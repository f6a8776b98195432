// The sign-in card: asks for an API key when the server needs one, checks it with the server before keeping it,
// and says why a key stopped working (revoked, unknown).

import { listRequests } from "../api.js";
import { signIn, signOut } from "../session.js";

export class SignInCard {
  constructor() {
    this.card = document.getElementById("sign-in");
    this.form = document.getElementById("sign-in-form");
    this.input = document.getElementById("key-input");
    this.message = document.getElementById("sign-in-message");
  }

  /**
   * Shows the card (with `reason`, e.g. why the last key was refused) and resolves once a key the server accepts
   * is kept.
   */
  ask(reason = "") {
    document.getElementById("main").hidden = true;
    this.card.hidden = false;
    this.message.textContent = reason;
    this.input.value = "";
    this.input.focus();
    return new Promise((resolve) => {
      this.form.onsubmit = async (event) => {
        event.preventDefault();
        const key = this.input.value.trim();
        if (!key) {
          this.message.textContent = "Paste your API key (it starts with itk_).";
          return;
        }
        signIn(key);
        try {
          await listRequests({ limit: 1 });
        } catch (error) {
          signOut();
          this.message.textContent = error.status === 401
            ? `This key was not accepted: ${error.message}`
            : error.message;
          return;
        }
        this.card.hidden = true;
        document.getElementById("main").hidden = false;
        resolve();
      };
    });
  }
}
