"""Activation-aware token pruning (Agile-Quant): drop the prompt tokens that attend least to the first token.

* :mod:`edgekit.prune.schedule` — which layers prune, how many tokens each keeps, which ones (the count and the
  selection are the C++ runtime's own, ``csrc/runtime/prune.cpp``, through the binding);
* :class:`edgekit.engines.fake.PrunedLlama` — a PyTorch Llama forward with pruning and a per-layer KV cache;
* :mod:`edgekit.eval.continuation` — continuation perplexity: prefill a prefix with pruning, score what follows.
"""
