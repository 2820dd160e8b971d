"""The two named evaluation protocols (issue 20 item 5): rows, batch and generation length, the
default on TOFU's files, sizes honoured or refused, and the protocol recorded with every run."""
import pytest

from engine.data.loader import load_benchmark
from engine.data.tofu_layout import PROTOCOL_SETTINGS, default_protocol, is_tofu_layout, write_tofu_layout
from engine.train import RunConfig


@pytest.fixture(scope="module")
def tofu_dir(tmp_path_factory):
    return write_tofu_layout(tmp_path_factory.mktemp("tofu"))


def test_protocol_settings_are_the_published_ones():
    assert PROTOCOL_SETTINGS["tofu"] == {"rows": 300, "eval_batch_size": 30, "max_new_tokens": 200}
    assert PROTOCOL_SETTINGS["open-unlearning"] == {"rows": None, "eval_batch_size": 32, "max_new_tokens": 200}


def test_default_on_tofus_files_is_open_unlearning(tofu_dir):
    assert is_tofu_layout(tofu_dir) and is_tofu_layout(tofu_dir / "forget10")
    assert default_protocol(tofu_dir / "forget10") == "open-unlearning" and default_protocol("demo") == "all"
    ou = load_benchmark(tofu_dir, "forget10")
    assert ou.protocol == "open-unlearning" and len(ou.eval_split("retain")) == 400
    assert len(ou.eval_split("forget")) == len(ou.forget)
    assert len(load_benchmark(tofu_dir, "forget10", protocol="tofu").eval_split("retain")) == 300


def test_run_config_takes_the_protocols_settings_and_records_them(tofu_dir):
    data = str(tofu_dir / "forget10")
    ou = RunConfig(model="/m", data=data)
    assert (ou.protocol, ou.eval_batch_size, ou.eval_max_new_tokens, ou.retain_eval_size) == \
        ("open-unlearning", 32, 200, None)
    tofu = RunConfig(model="/m", data=data, protocol="tofu")
    assert (tofu.eval_batch_size, tofu.eval_max_new_tokens) == (30, 200)
    assert tofu.to_dict()["protocol"] == "tofu"
    demo = RunConfig()
    assert (demo.protocol, demo.retain_eval_size, demo.eval_max_new_tokens, demo.eval_batch_size) == ("all", 200, 64, None)
    # a record from before named protocols, on TOFU's files: TOFU's protocol, its ignored size dropped
    old = RunConfig.from_dict({"model": "/m", "data": data, "lr": 1e-5, "retain_eval_size": 200})
    assert old.protocol == "tofu" and old.retain_eval_size is None


def test_size_options_are_honoured_or_refused(tofu_dir):
    data = str(tofu_dir / "forget10")
    with pytest.raises(ValueError, match="retain_eval_size .* applies to protocol 'all'"):
        RunConfig(data=data, retain_eval_size=100).check()
    with pytest.raises(ValueError, match="protocol must be one of"):
        RunConfig(protocol="papers").check()
    RunConfig(data=data, protocol="all", retain_eval_size=100).check()  # honoured under 'all'


def test_cli_refuses_retain_eval_size_on_tofu_layout(tofu_dir, capsys):
    from engine.cli import main

    code = main(["unlearn", "--model", "demo", "--data", str(tofu_dir / "forget10"), "--loss", "ga",
                 "--retain-eval-size", "100", "--no-eval", "--max-steps", "1"])
    assert code == 2
    assert "applies to protocol 'all'" in capsys.readouterr().err


def test_retain_truth_ratios_are_cached_per_precision(tmp_path, monkeypatch, one_thread):
    import torch

    from engine import paths
    from engine.eval.full import reference_truth_ratios
    from engine.resolve import load_data, model_path

    bench = load_data("demo/forget01")
    retain = model_path("demo-retain")
    monkeypatch.setattr(paths, "cache_dir", lambda: tmp_path)
    before = set(paths.cache_dir().glob("reference_tr_*.json"))
    a = reference_truth_ratios(retain, bench, "cpu", torch.float32)
    b = reference_truth_ratios(retain, bench, "cpu", torch.float64)
    made = set(paths.cache_dir().glob("reference_tr_*.json")) - before
    assert len(made) == 2  # one cache file per dtype: the key records the precision
    assert a.shape == b.shape and abs(a - b).max() < 1e-4  # same values up to precision on CPU
