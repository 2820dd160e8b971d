"""Case 2 (broken model folders) and case 6 (context from the model config): `load_model`
refuses with the reason, and the CLI turns the refusal into one line with exit code 2."""
from __future__ import annotations

import shutil
import warnings

import pytest
from safetensors.torch import load_file, save_file

from engine.models import ModelLoadError, load_model

from faultkit import CONTEXT, assert_one_line_error, cli, save_model, snapshot, tiny_gpt2


def copy_model(model_dir, tmp_path):
    return shutil.copytree(model_dir, tmp_path / "copy")


def test_folder_without_tokenizer_files_is_refused_by_score(tmp_path, builtin_tokenizer, data_dir, capsys):
    folder = save_model(tmp_path / "no_tok", tiny_gpt2(builtin_tokenizer))  # weights + config only
    before = snapshot(folder)
    code, out, err = cli(["score", "--selector", "all", "--model", folder, "--data", data_dir], capsys)
    assert_one_line_error(code, err, 2, "no tokenizer files", str(folder))
    assert out == "" and snapshot(folder) == before


def test_tokenizer_with_more_ids_than_the_embedding_is_refused(tmp_path, builtin_tokenizer):
    folder = save_model(tmp_path / "small_vocab", tiny_gpt2(builtin_tokenizer, vocab=len(builtin_tokenizer) - 10),
                        builtin_tokenizer)
    with pytest.raises(ModelLoadError, match=rf"tokenizer has {len(builtin_tokenizer)} ids but the model's "
                                             rf"embedding only {len(builtin_tokenizer) - 10} rows"):
        load_model(folder, "cpu")


def test_tokenizer_with_fewer_ids_warns(tmp_path, builtin_tokenizer):
    folder = save_model(tmp_path / "big_vocab", tiny_gpt2(builtin_tokenizer, vocab=len(builtin_tokenizer) + 7),
                        builtin_tokenizer)
    with pytest.warns(UserWarning, match=rf"{len(builtin_tokenizer)} ids, fewer than the model's "
                                         rf"{len(builtin_tokenizer) + 7} embedding rows"):
        load_model(folder, "cpu")


def test_encoder_only_bert_is_refused(tmp_path, builtin_tokenizer):
    from transformers import BertConfig, BertForMaskedLM

    cfg = BertConfig(vocab_size=len(builtin_tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64)
    folder = save_model(tmp_path / "bert", BertForMaskedLM(cfg), builtin_tokenizer)
    with pytest.raises(ModelLoadError, match="BertForMaskedLM is not a causal language model"):
        load_model(folder, "cpu")


def test_bert_via_cli_is_one_line(tmp_path, builtin_tokenizer, data_dir, capsys):
    from transformers import BertConfig, BertModel

    cfg = BertConfig(vocab_size=len(builtin_tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64)
    folder = save_model(tmp_path / "bert", BertModel(cfg), builtin_tokenizer)
    code, _, err = cli(["score", "--selector", "all", "--model", folder, "--data", data_dir], capsys)
    assert_one_line_error(code, err, 2, "BertModel", "not a causal language model")


def test_missing_weights_are_refused(model_dir, tmp_path):
    folder = copy_model(model_dir, tmp_path)
    tensors = load_file(str(folder / "model.safetensors"))
    dropped = next(k for k in tensors if k.endswith("mlp.c_fc.weight"))
    del tensors[dropped]
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ModelLoadError, match=r"1 weight\(s\) missing .*c_fc\.weight"):
        load_model(folder, "cpu")


def test_weights_of_the_wrong_shape_are_refused(model_dir, tmp_path):
    folder = copy_model(model_dir, tmp_path)
    tensors = load_file(str(folder / "model.safetensors"))
    key = next(k for k in tensors if k.endswith("mlp.c_fc.weight"))
    tensors[key] = tensors[key][:, :8].contiguous()
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ModelLoadError, match=str(folder)):
        load_model(folder, "cpu")


def test_context_comes_from_the_model_config_not_the_tokenizer(model_dir, tmp_path):
    folder = copy_model(model_dir, tmp_path)
    cfg_path = folder / "tokenizer_config.json"
    import json

    cfg = json.loads(cfg_path.read_text())
    cfg.pop("model_max_length", None)  # transformers then uses a huge placeholder
    cfg_path.write_text(json.dumps(cfg))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, tok = load_model(folder, "cpu")
    assert model.config.n_positions == CONTEXT and tok.model_max_length == CONTEXT


def test_a_good_folder_still_loads_without_warnings(model_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        model, tok = load_model(model_dir, "cpu")
    assert len(tok) == model.get_input_embeddings().weight.shape[0]
