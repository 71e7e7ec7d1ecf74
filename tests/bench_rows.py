"""The row schema of ``edgekit bench model`` as the tests check it (tests/unit/test_bench_model.py, and the real run in
tests/model/test_bench_model_smollm2.py): each key of a result row and its type."""

ROW_KEYS = {"engine": str, "phase": str, "tokens_per_s": float, "ttft_s": float, "peak_rss_mb": float,
            "model_mb": float, "threads": int, "reps": int, "tokens": int, "load_s": float}
