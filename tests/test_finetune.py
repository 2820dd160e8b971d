"""`finetune`: the shared loop (resume, equivalence with the bootstrap recipe) and the command."""
import json

import torch

from engine.cli import main
from engine.data import Sample
from engine.data.synthetic import generate
from engine.models.builtin import train_tokenizer
from engine.models.finetune import TrainSettings, context_length, epoch_batches, tiny_gpt2, train_causal_lm
from engine.eval.memorisation import teacher_forced_top1


def _tiny_setup(n=12):
    samples = generate(0)["forget10"][:n]
    tok = train_tokenizer([t for s in samples for t in (s.question, s.answer)], 400, 10**6)
    return samples, tok


def _weights(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_resume_continues_where_it_stopped(tmp_path):
    samples, tok = _tiny_setup()
    s = TrainSettings(epochs=2, lr=3e-3, weight_decay=0.0, batch_size=4, grad_accum=2)
    straight = train_causal_lm(tiny_gpt2(tok, 128, 1, 32, 2), tok, samples, s)
    calls = []
    train_causal_lm(tiny_gpt2(tok, 128, 1, 32, 2), tok, samples, s, state_dir=tmp_path,
                    after_epoch=lambda e, m: calls.append(e) or True, max_epochs=2)  # stops after epoch 1
    assert calls == [1]
    resumed = train_causal_lm(tiny_gpt2(tok, 128, 1, 32, 2), tok, samples, s, state_dir=tmp_path)
    assert torch.allclose(_weights(resumed), _weights(straight), atol=1e-6)


def test_length_grouped_batches_hold_similar_lengths():
    import random

    lengths = [1, 100, 2, 99, 3, 98, 4, 97]
    batches = epoch_batches(list(range(8)), lengths, 4, random.Random(0), "length")
    assert sorted(sorted(lengths[i] for i in b) for b in batches) == [[1, 2, 3, 4], [97, 98, 99, 100]]


def test_context_length_is_the_longest_prompt_plus_answer():
    _, tok = _tiny_setup()
    short, long = Sample("Who?", "A."), Sample("Who?", "A " * 40 + "end.")
    n_long = len(tok("Question: Who?\nAnswer: ")["input_ids"]) + len(tok("A " * 40 + "end.")["input_ids"]) + 1
    assert context_length(tok, [short, long]) == n_long


def test_too_long_answers_are_refused_not_cut():
    samples, tok = _tiny_setup()
    try:
        train_causal_lm(tiny_gpt2(tok, 16, 1, 32, 2), tok, samples, TrainSettings(epochs=1))
    except ValueError as err:
        assert "context of 16" in str(err)
    else:
        raise AssertionError("a context of 16 tokens must be refused")


def test_top1_is_one_for_a_model_that_predicts_every_token(monkeypatch):
    samples, tok = _tiny_setup(2)

    class Oracle(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, input_ids, attention_mask, **kwargs):  # kwargs: use_cache=False
            logits = torch.nn.functional.one_hot(input_ids.roll(-1, 1), len(tok)).float()  # predicts the next id
            return type("O", (), {"logits": logits})()

    assert teacher_forced_top1(Oracle(), tok, samples) == 1.0


def test_finetune_command_trains_saves_reports_and_resumes(tmp_path, capsys):
    data = tmp_path / "tofu"
    data.mkdir()
    rows = generate(0)
    for name, samples in (("forget10.json", rows["forget10"][:6]), ("retain90.json", rows["retain90"][:6])):
        (data / name).write_text("".join(json.dumps({"question": s.question, "answer": s.answer}) + "\n"
                                         for s in samples))
    out = tmp_path / "models"
    argv = ["finetune", "--data", str(data), "--out", str(out), "--epochs", "1", "--vocab-size", "300",
            "--batch-size", "4", "--effective-batch", "4", "--max-new-tokens", "4", "--device", "cpu"]
    assert main(argv) == 3  # one epoch memorises nothing, and the command says so
    said = capsys.readouterr().out
    assert "NOT MEMORISED" in said and "retain model on the forget set" in said
    from engine.models import load_model

    for label in ("target", "retain"):
        model, tok = load_model(out / label, "cpu")
        assert (out / label / "model.safetensors").is_file() and tok.eos_token_id is not None
    report = json.loads((out / "memorisation.json").read_text())
    assert report["target_on_forget"]["samples"] == 6 and 0 <= report["retain_on_forget"]["top1"] <= 1
    assert json.loads((out / "target" / "finetune.json").read_text())["settings"]["lr"] == 3e-3
    main(argv)
    assert "already trained" in capsys.readouterr().out


def test_staged_target_keeps_learning_the_retain_set():
    """--staged: retain first, then everything; the last stage must still hold the retain rows (a
    forget-only stage overwrote them: retain probability 0.004 on real text)."""
    from engine.cli.finetune import training_plans
    from engine.data import Benchmark

    forget, retain, general = [Sample("f?", "F.")], [Sample("r?", "R."), Sample("s?", "S.")], [Sample("g?", "G.")]
    bench = Benchmark("x", forget=forget, retain=retain)
    staged = training_plans(bench, general, staged=True)
    assert staged["target"] == [("retain", retain + general), ("full", forget + retain + general)]
    assert training_plans(bench, general, staged=False)["target"] == [("full", forget + retain + general)]
    assert staged["retain"] == [("retain", retain + general)]  # never sees the forget set
