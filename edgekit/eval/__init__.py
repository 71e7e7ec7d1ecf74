"""Evaluation over any engine (:mod:`edgekit.engines`).

* :mod:`edgekit.eval.perplexity` — the one negative-log-likelihood loop, for every engine;
* :mod:`edgekit.eval.evaluate` — ``edgekit eval``: perplexity of causal LMs, embedding cosine of encoders;
* :mod:`edgekit.eval.continuation` — continuation perplexity with token pruning (``edgekit eval --prefix-len``);
* :mod:`edgekit.eval.generate` — ``edgekit run``: text generation.
"""
