"""A retain model wherever FQ is computed: the CLI flag, the run config, the 'unavailable' note,
and a truth-ratio cache keyed by prompt format."""
from engine.cli import build_parser
from engine.cli.runs import list_table
from engine.cli.unlearn import config_from_args
from engine.train import RunConfig


def _args(*extra):
    return build_parser().parse_args(["unlearn", "--loss", "ga", *extra])


def test_unlearn_records_the_retain_model_given():
    cfg = config_from_args(_args("--model", "/m/target", "--data", "/d/tofu", "--retain-model", "/m/retain"))
    assert cfg.retain_model == "/m/retain" and cfg.to_dict()["retain_model"] == "/m/retain"
    assert RunConfig.from_dict(cfg.to_dict()).retain_model == "/m/retain"


def test_builtin_pairing_is_kept_and_others_get_none():
    assert config_from_args(_args()).retain_model == "demo-retain"
    assert config_from_args(_args("--model", "/m/target", "--data", "/d/tofu")).retain_model is None


def test_runs_say_why_fq_is_missing():
    from engine.store import EpochRecord, RunRecord

    run = RunRecord(1, {"model": "/m/t", "data": "/d/tofu", "loss": "ga", "epochs": 1}, None, "finished", "t0", "t1",
                    None, None, None, [EpochRecord(1, 3, {"forget_quality": None, "model_utility": 0.5}, "t1")])
    assert "unavailable: no retain model given" in list_table([run])
    run.config.retain_model = "/m/r"
    assert "unavailable" not in list_table([run])


def test_truth_ratio_cache_key_includes_the_prompt_format(tmp_path):
    from engine.data import Sample
    from engine.eval.full import _fingerprint

    samples = [Sample("q?", "a.")]
    assert _fingerprint(tmp_path, samples, "Question: {question}\nAnswer: ") != _fingerprint(tmp_path, samples, "{{ chat }}")
