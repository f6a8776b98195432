"""The infinitetalk engine: the real model, its weights and its sampler.

Layers, each importing only those below it (none imports the engine contract or the worker):
- `engine.py`: `InfiniteTalkEngine`, the only module that speaks the contract; it maps the plain errors raised
  below (`WeightsError`, `ValueError`) to protocol codes.
- `model_set.py`: every model loaded from the seed's `weights/` folder (`weights.py`), with the LoRA (`lora.py`).
- `pipeline.py`: the streaming sampler loop; `sampler/`: its pure parts.
- `models/`: the networks and their key converters; `loading.py` (+ `safetensors_reader.py`): the one
  weight-loading stack (meta build, streamed reads, strict key accounting).
"""
