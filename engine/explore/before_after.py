"""Before/after: greedy generations and answer-token probabilities of a model and a run checkpoint."""
from __future__ import annotations

from pathlib import Path

from ..data import Sample
from ..eval.metrics import greedy_generate
from ..tokens import encode_samples
from ..train.evaluation import forget_token_probs
from .session import Session
from .views import label_tokens


def answer_probs(model, tokenizer, sample: Sample) -> dict:
    """{tokens, eos, probs} of a sample's ground-truth answer under `model`: raw label tokens,
    which of them is the closing EOS, and p(y_t) at each."""
    tokens, eos = label_tokens(tokenizer, encode_samples(tokenizer, [sample]), 0)
    return {"tokens": tokens, "eos": eos, "probs": forget_token_probs(model, tokenizer, [sample])[0].tolist()}


def before_after(session: Session, model_spec: str, data_spec: str, split: str, index: int,
                 checkpoint: str | Path, max_new_tokens: int = 48) -> dict:
    """Returns {question, answer, before: {model, generation, tokens, eos, probs}, after: {...}}.

    ModelLoadError when the checkpoint directory cannot be loaded.
    """
    sample = session.sample(data_spec, split, index)
    out = {"question": sample.question, "answer": sample.answer}
    with session.lock:
        for side, spec in (("before", model_spec), ("after", str(checkpoint))):
            model, tok = session.model(spec)
            gen = greedy_generate(model, tok, [sample.question], max_new_tokens=max_new_tokens)[0]
            out[side] = {"model": spec, "generation": gen, **answer_probs(model, tok, sample)}
    return out
