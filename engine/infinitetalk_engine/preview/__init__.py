"""The preview engine: animates the uploaded face from the audio on CPU (no model, no torch)."""
