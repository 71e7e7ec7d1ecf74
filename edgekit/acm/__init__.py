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

Cost on the 2-core development machine (SmolLM2-135M, measured with ``edgekit acm --steps1 2 --steps2 2 --steps3 2``;
see the coordinator's notes for the numbers behind ``recipes/acm/default.yaml``).
"""
