"""Activation-aware token pruning (Agile-Quant): drop the prompt tokens that attend least to the first token.

* :mod:`edgekit.prune.schedule` — which layers prune, how many tokens each keeps, which ones (the rules the C++
  runtime's ``csrc/runtime/prune.cpp`` follows too);
* :mod:`edgekit.prune.torch_path` — a PyTorch Llama forward with pruning and a per-layer KV cache, for evaluation;
* :mod:`edgekit.prune.evaluate` — continuation perplexity: prefill a prefix with pruning, score what follows.
"""
