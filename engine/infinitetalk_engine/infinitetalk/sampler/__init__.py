"""The streaming sampler's pure parts: timestep schedule, guidance combinations, colour matching, audio windows and
the clip loop's bookkeeping. The loop itself (model calls, VAE, noise) lives in the pipeline."""
