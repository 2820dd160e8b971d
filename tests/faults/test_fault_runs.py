"""Cases 3, 6 and 7: every loss with a retain term runs with it off, answers that do not fit the
context are named (never cut silently), and a truncated cache file is ignored and rebuilt."""
from __future__ import annotations

import json
import warnings

import pytest
import torch

from faultkit import CONTEXT, assert_one_line_error, cli, write_split

NLL = torch.tensor([[0.0, 2.0, 4.0]])
MASK = torch.tensor([[False, True, True]])


def test_graddiff_with_alpha_zero_needs_no_retain_batch():
    from engine.losses import graddiff_loss

    loss, stats = graddiff_loss(NLL, MASK.float(), alpha=0.0)
    assert loss.item() == pytest.approx(-(2 + 4) / 2) and "retain" not in stats


@pytest.mark.parametrize("name", ["graddiff", "npo", "tpo", "atwu"])
def test_every_retain_loss_runs_with_alpha_zero(name):
    from engine.losses import get_loss

    spec = get_loss(name)
    assert not spec.needs_retain({"alpha": 0})
    tensors = {"nll": NLL, "ref_nll": NLL, "weights": MASK.float(), "answer_mask": MASK, "logit": NLL,
               "ref_logit": NLL}
    loss, stats = spec(**{k: v for k, v in tensors.items() if k in spec.inputs}, **spec.params({"alpha": 0}))
    assert torch.isfinite(loss) and "retain" not in stats


def test_unlearn_graddiff_alpha_zero_on_data_without_retain(home, model_dir, forget_only_dir, capsys):
    code, out, err = cli(["unlearn", "--model", model_dir, "--data", forget_only_dir, "--loss", "graddiff",
                          "--loss-param", "alpha=0", "--epochs", "1", "--max-steps", "1", "--no-eval",
                          "--no-checkpoints", "--device", "cpu"], capsys)
    assert code == 0, err
    assert "run 1: finished" in out


def test_retain_loss_without_retain_data_is_refused_before_recording(home, model_dir, forget_only_dir, capsys):
    code, _, err = cli(["unlearn", "--model", model_dir, "--data", forget_only_dir, "--loss", "graddiff",
                        "--device", "cpu"], capsys)
    assert_one_line_error(code, err, 2, "needs retain data", "alpha=0")
    assert not (home / "store.sqlite").exists() or "no runs" in cli(["runs"], capsys)[1]


def long_answer_dir(tmp_path, question: str, answer: str):
    folder = tmp_path / "long"
    write_split(folder, "forget10", [{"question": question, "answer": answer}])
    return folder


def test_answer_longer_than_the_context_is_named_with_token_counts(tmp_path, home, model_dir, capsys):
    folder = long_answer_dir(tmp_path, "Who?", "word " * 400)
    code, out, err = cli(["score", "--selector", "all", "--model", model_dir, "--data", folder], capsys)
    assert_one_line_error(code, err, 2, "forget10:1", f"> context {CONTEXT}", "do not fit")
    assert out == ""


def test_question_longer_than_the_context_in_eval_is_refused(tmp_path, home, model_dir, capsys):
    folder = long_answer_dir(tmp_path, "Why " * 300 + "?", "Because.")
    code, _, err = cli(["eval", "--model", model_dir, "--data", folder, "--max-new-tokens", "2"], capsys)
    assert_one_line_error(code, err, 2, "forget10:1", f"> context {CONTEXT}")


def test_encode_reports_the_cut_it_makes(builtin_tokenizer):
    from engine.tokens import encode

    with pytest.warns(UserWarning, match=r"'Who\?' has \d+ tokens but only \d+ fit in the context of 64"):
        batch = encode(builtin_tokenizer, ["Who?"], ["word " * 500], max_length=64)
    assert batch.input_ids.shape[1] == 64


def test_overflows_is_empty_when_everything_fits(builtin_tokenizer):
    from engine.context import overflows
    from engine.data import Sample

    assert overflows(builtin_tokenizer, [Sample("Who?", "Ana.")], context=CONTEXT) == []


def test_truncated_reference_cache_is_ignored_and_rebuilt(home, model_dir, data_dir):
    from engine import paths
    from engine.eval.full import reference_truth_ratios
    from engine.resolve import load_data

    bench = load_data(str(data_dir))
    first = reference_truth_ratios(model_dir, bench, "cpu")
    (cache,) = paths.cache_dir().glob("reference_tr_*.json")
    good = cache.read_text()
    cache.write_text(good[: len(good) // 2])  # a crash mid-write before this fix
    with pytest.warns(UserWarning, match=f"{cache}: unreadable cache file"):
        again = reference_truth_ratios(model_dir, bench, "cpu")
    assert again.tolist() == pytest.approx(first.tolist()) and json.loads(cache.read_text()) == json.loads(good)


def test_garbage_scorer_metadata_is_skipped(home, tiny_model):
    from engine.data import Sample
    from engine.weights.atwu import AtwuScorer, find_scorer, model_key, save_scorer

    samples = [Sample("Who?", "Ana.")]
    path = save_scorer(AtwuScorer(32), model_key(tiny_model), samples)
    assert find_scorer(tiny_model, samples) == path
    path.with_suffix(".json").write_bytes(b"\x00\xff{garbage")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert find_scorer(tiny_model, samples) is None
