"""One error for everything an export format cannot express, shared by the GGUF and ONNX exporters."""

from __future__ import annotations

from edgekit.errors import EdgekitError


def refuse(path, fmt: str, problems: list[str], linear_reasons: dict[str, str | None], advice: str) -> None:
    """Raise one :class:`EdgekitError` listing every problem, or return when there is none.

    Args:
        path: The artifact (named in the message).
        fmt: The format's name, e.g. ``"GGUF"``.
        problems: Whole-model problems, each a phrase.
        linear_reasons: Linear name → why that linear cannot be written (None when it can); linears with the same
            reason are reported together with a count and one example.
        advice: The sentence that says what to do instead.
    """
    kinds: dict[str, list[str]] = {}
    for name, why in linear_reasons.items():
        if why:
            kinds.setdefault(why, []).append(name)
    problems = problems + [f"{why} in {len(names)} linear(s), e.g. {names[0]}" for why, names in kinds.items()]
    if problems:
        raise EdgekitError(f"{path} cannot be exported to {fmt}: " + "; ".join(problems) + ". " + advice)
