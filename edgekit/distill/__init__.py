"""Encoder-decoder distillation (Elfeki et al., "Return of the Encoder", arXiv 2501.16273): a T5 v1.1 student
(encoder reads a prefix, decoder produces the continuation) trained from a decoder-only teacher with
``w * KL(teacher ‖ student) + (1 - w) * CE`` (the paper's w = 0.9; 0.5 in the CPU-sized default config);
``edgekit distill``.

Modules: :mod:`~edgekit.distill.config` (student + training configs, ``recipes/students/*.yaml``),
:mod:`~edgekit.distill.student` (the T5 student, its initialisation from the teacher, parameter counts),
:mod:`~edgekit.distill.pairs` (prefix → continuation pairs from man pages or files, the held-out split),
:mod:`~edgekit.distill.teacher` (teacher log-probs, the top-k cache, the held-out comparison),
:mod:`~edgekit.distill.loss` (the KD loss, top-k KL with a tail bucket), :mod:`~edgekit.distill.train` (AdamW,
schedule, checkpoints, data parallelism) and :mod:`~edgekit.distill.api` (:func:`distill_model`, the stage).
"""

from edgekit.distill.config import DistillConfig, StudentConfig, TrainConfig, load_student_config

__all__ = ["DistillConfig", "StudentConfig", "TrainConfig", "load_student_config"]
