"""Benchmarks and reference evaluators: llama.cpp perplexity, speed and engine comparisons."""
