"""Issue 25, point 3: causal LMs only, by behaviour, not by a config field. A BERT masked-LM whose
config has no `architectures` (is_decoder false) used to be accepted and "unlearned" to loss
−7.68; it is refused at load (config: an encoder family without is_decoder; loaded class; and a
behavioural probe: changing the last token must not change earlier outputs), exit 2, before any
run is recorded."""
from __future__ import annotations

import json

import pytest

from faultkit import assert_one_line_error, cli, save_model, snapshot


def _bert(builtin_tokenizer, cls_name="BertForMaskedLM", **extra):
    import transformers

    cfg = transformers.BertConfig(vocab_size=len(builtin_tokenizer), hidden_size=32, num_hidden_layers=1,
                                  num_attention_heads=2, intermediate_size=64, max_position_embeddings=64, **extra)
    return getattr(transformers, cls_name)(cfg).eval()


@pytest.fixture()
def bert_without_architectures(tmp_path, builtin_tokenizer):
    """A tiny BERT masked-LM saved with safetensors, `architectures` removed from config.json."""
    folder = save_model(tmp_path / "bert", _bert(builtin_tokenizer), builtin_tokenizer)
    cfg_path = folder / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.pop("architectures", None)
    assert cfg.get("is_decoder", False) is False
    cfg_path.write_text(json.dumps(cfg))
    return folder


def test_bert_without_architectures_is_refused_by_load_model(bert_without_architectures):
    from engine.models import ModelLoadError, load_model

    with pytest.raises(ModelLoadError, match="is_decoder false: its attention is bidirectional"):
        load_model(bert_without_architectures, "cpu")


def _spans(data_dir):
    from faultkit import FORGET

    path = data_dir.parent / "spans.jsonl"
    path.write_text("\n".join(json.dumps({"question": r["question"], "answer": r["answer"],
                                          "spans": [{"start": 0, "end": 4}]}) for r in FORGET) + "\n")
    return path


@pytest.mark.parametrize("command", ["unlearn", "score", "eval", "selector-report", "leak-check"])
def test_bert_without_architectures_is_refused_by_every_command(bert_without_architectures, data_dir, home, capsys,
                                                                command):
    argv = {
        "unlearn": ["unlearn", "--loss", "ga", "--epochs", "1", "--no-eval", "--device", "cpu"],
        "score": ["score", "--selector", "all"],
        "eval": ["eval", "--device", "cpu"],
        "selector-report": ["selector-report", "--device", "cpu"],
        "leak-check": ["leak-check", "--device", "cpu", "--spans", _spans(data_dir)],
    }[command] + ["--model", bert_without_architectures, "--data", data_dir]
    before = snapshot(home)
    code, _, err = cli(argv, capsys)
    assert_one_line_error(code, err, 2, str(bert_without_architectures), "not a causal language model")
    kept = lambda snap: {k: v for k, v in snap.items() if not k.startswith(("cache", "store.sqlite"))}  # noqa: E731
    assert kept(snapshot(home)) == kept(before)  # the data and the model folder unchanged
    if (home / "store.sqlite").exists():
        from engine.store import Store

        assert Store(home / "store.sqlite").list_runs() == []  # no run recorded


def test_bert_without_architectures_is_refused_by_the_app_explore_session(bert_without_architectures):
    from engine.explore.session import Session
    from engine.models import ModelLoadError

    with pytest.raises(ModelLoadError, match="not a causal language model"):
        Session(device="cpu").model(str(bert_without_architectures))


@pytest.mark.parametrize("cls_name,extra,causal", [
    ("BertForMaskedLM", {}, False),
    ("BertLMHeadModel", {"is_decoder": True}, True),
], ids=["bert-mlm-bidirectional", "bert-decoder-causal"])
def test_the_behavioural_probe_tells_causal_from_bidirectional_attention(tmp_path, builtin_tokenizer, cls_name,
                                                                         extra, causal):
    from engine.models import ModelLoadError
    from engine.models.loading import check_causal_attention

    model = _bert(builtin_tokenizer, cls_name, **extra)
    if causal:
        check_causal_attention(tmp_path, model)
    else:
        with pytest.raises(ModelLoadError, match="changing token 8 changed the outputs at earlier positions"):
            check_causal_attention(tmp_path, model)


def test_the_probe_passes_a_real_causal_model(model_dir):
    from engine.models import load_model
    from engine.models.loading import check_causal_attention

    model, _ = load_model(model_dir, "cpu")  # load_model runs the probe itself; once more by hand
    check_causal_attention(model_dir, model)


def test_a_loaded_class_that_is_not_a_causal_lm_is_refused(tmp_path, builtin_tokenizer):
    from engine.models import ModelLoadError
    from engine.models.loading import check_causal_class

    with pytest.raises(ModelLoadError, match="loaded as BertForMaskedLM"):
        check_causal_class(tmp_path, _bert(builtin_tokenizer))


@pytest.mark.parametrize("model_type,extra", [("bert", {}), ("roberta", {}), ("electra", {})])
def test_encoder_families_without_is_decoder_are_refused_from_the_config(tmp_path, model_type, extra):
    from transformers import AutoConfig

    from engine.models import ModelLoadError
    from engine.models.loading import check_causal_lm_config

    cfg = AutoConfig.for_model(model_type, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=64, **extra)
    cfg.save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="is_decoder false"):
        check_causal_lm_config(tmp_path)
    cfg.is_decoder = True  # a decoder BERT is causal by its config: accepted here (the probe checks behaviour)
    cfg.save_pretrained(tmp_path)
    check_causal_lm_config(tmp_path)
