"""Run-time side of edgekit: CPU features, compiled kernel implementations, thin wrappers over ``edgekit._C``."""
