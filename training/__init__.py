"""training — everything that makes the models the project ships (``artifacts/``).

Rooms (each imports only the ones above it; ``tests/unit/training/test_package.py``
checks there is no cycle and no private name crosses a module):

- ``data``: the datasets a run reads. ``checkpoints``: model directories with a manifest,
  written through a staging directory.
- ``base_models``: the text base model prepared from its GGUF, and the small VLM
  assembled on demand; ``tiny_vlm``: the random test VLM.
- ``fit``: the one fit loop (shuffles, accumulation, optimiser and scheduler steps,
  checkpoints, early stopping, the kept state) and what the trainers share.
- ``sft`` (with ``sft_data``): LoRA SFT of the text model (the agent adapter).
- ``vlm``: the small VLM: ``checkpoint`` (assembling), ``captions``, ``encoding``,
  ``loop`` (its schedule over ``fit``), ``pretraining`` (the vision tower), ``diagnosis``
  (its detection adapter).
- ``adapters``: LoRA adapters served as they are (the all-zero adapter).
- ``classifier`` (with ``classifier_cnn``): the frozen-feature classifier.
- ``evaluate``: adapters scored through a running engine.
"""
