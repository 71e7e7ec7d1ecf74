"""Adaptive computation modules (ACM; Wójcik et al., arXiv 2312.10193): each gated FFN becomes N learners summed in
order and a tiny per-token gate choosing how many of them run (k = 0..N), trained in three phases.

=================  =================================================================================================
module             what it owns
=================  =================================================================================================
``modules``        :class:`AcmFfn` and its gate; the run-time modes (gated, dense, forced k, gate bias); k statistics
``convert``        importance ordering, the exact conversion, the layer walk running phases 1 and 2 (the handler
                   registered for :class:`edgekit.config.AcmConfig`)
``phases``         phase 1 (representation distillation, MSE over all k) and phase 2 (gate labels by the ratio rule)
``finetune``       phase 3: KL/CE to the dense model + budget, entropy and diversity terms
``distributed``    torchrun data parallelism (gloo on CPU, nccl on GPUs)
``store``          the ACM model directory (safetensors + config + ``acm.json``)
``api``            :func:`convert_model`, the whole stage behind ``edgekit acm``
=================  =================================================================================================

The config is :class:`edgekit.config.AcmConfig` (recipes: ``recipes/acm/*.yaml``, :func:`edgekit.recipes.
load_acm_recipe`). Not here yet (later slices): the C++ runtime's gated FFN, quantized ACM artifacts (``edgekit
quantize`` refuses an ACM directory for now), ``edgekit bench acm`` and its baselines. Their hooks: the learners are
ordinary row/column blocks of the dense ``gate_proj``/``up_proj``/``down_proj`` (a quantizer sees plain linears,
an export at k = N is the dense FFN), :func:`edgekit.acm.modules.ffn_stats` is the statistics format a runtime
should report, and ``force_k`` gives the static-width baseline.

Cost of ``recipes/acm/default.yaml`` on SmolLM2-135M (16 × 256 calibration tokens), from a smoke run with 2 steps per
phase on the shared 2-core development machine (``edgekit acm smollm2-135m --steps1 2 --steps2 2 --steps3 2``):
load 11 s; the walk over the frozen model (capture, importance, gate labels) about 45 s; phase 1 0.47 s per step per
layer (1024 token rows); phase 2 0.41 s per step per layer including the labels (one pass over the layer's tokens),
a few hundredths of a second per gate step alone; phase 3 35 s per step (2 windows of 256 tokens: teacher forward,
student forward and backward, the 49k-vocabulary KL); peak RSS 4.4 GiB. The defaults (30 / 50 / 30 steps) so come
to about 11 + 45 + 30·30·0.47 + 30·(0.75 + 50·0.03) + 30·35 ≈ 1600 s, some 27 minutes.
"""
