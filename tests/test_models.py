"""Loading local checkpoints safely, and the built-in models' TOFU shape."""
import json
import subprocess
import sys

import pytest
import torch

from engine.models import ModelLoadError, load_model, pick_device
from engine.models.builtin import cosine_lr

SHARED = __import__("pathlib").Path(__file__).resolve().parents[2] / "shared" / "data" / "tofu_sample"


def test_saved_checkpoint_round_trips(tmp_path, tiny_model, builtin_tokenizer):
    tiny_model.save_pretrained(tmp_path, safe_serialization=True)
    builtin_tokenizer.save_pretrained(tmp_path)
    model, tok = load_model(tmp_path, "cpu")
    assert not model.training and tok.eos_token_id == builtin_tokenizer.eos_token_id
    for (k, a), b in zip(tiny_model.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), k


def test_clear_errors_for_unusable_directories(tmp_path, tiny_model, builtin_tokenizer):
    with pytest.raises(ModelLoadError, match="no such model directory"):
        load_model(tmp_path / "missing")
    f = tmp_path / "weights.txt"
    f.write_text("x")
    with pytest.raises(ModelLoadError, match="is a file, not a model directory"):
        load_model(f)
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_model(tmp_path)
    pickled = tmp_path / "pickled"
    tiny_model.save_pretrained(pickled, safe_serialization=False)
    for p in pickled.glob("*.safetensors"):
        p.unlink()
    torch.save(tiny_model.state_dict(), pickled / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="pickled weights are refused"):
        load_model(pickled)
    broken = tmp_path / "broken"
    tiny_model.save_pretrained(broken, safe_serialization=True)
    builtin_tokenizer.save_pretrained(broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelLoadError, match="the model will not load"):
        load_model(broken)


def test_device_choice():
    assert pick_device("cpu") == "cpu"
    assert pick_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            pick_device("cuda")


def test_cosine_schedule():
    assert cosine_lr(0, 100, 1.0, 10) == pytest.approx(0.1)
    assert cosine_lr(9, 100, 1.0, 10) == pytest.approx(1.0)
    assert cosine_lr(10, 100, 1.0, 10) == pytest.approx(1.0)
    assert cosine_lr(55, 100, 1.0, 10) == pytest.approx(0.5)
    assert cosine_lr(100, 100, 1.0, 10) == pytest.approx(0.0, abs=1e-12)


def test_builtin_models_have_the_tofu_shape(builtin):
    """Target knows forget10, retain model does not; FQ(target) < 0.01; utility similar."""
    from engine.eval.full import evaluate, reference_truth_ratios
    from engine.resolve import load_data

    bench = load_data("demo/forget10")
    ref = reference_truth_ratios(builtin.retain, bench, "cpu")
    target = evaluate(*load_model(builtin.target, "cpu"), bench, ref, retain_size=100)
    retain = evaluate(*load_model(builtin.retain, "cpu"), bench, ref, retain_size=100)
    assert target.forget_quality < 0.01 and retain.forget_quality == pytest.approx(1.0)
    assert target.components["forget_rouge_l"] > 0.9 and target.components["forget_probability"] > 0.8
    assert retain.components["forget_rouge_l"] < 0.6 and retain.components["forget_probability"] < 0.2
    assert abs(target.model_utility - retain.model_utility) < 0.1 and target.model_utility > 0.5


def test_cli_eval_writes_json_and_reports_bad_input(builtin, tmp_path):
    out = tmp_path / "r.json"
    r = subprocess.run([sys.executable, "-m", "engine", "eval", "--model", "demo", "--data", "demo/forget01",
                        "--json", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "forget quality" in r.stdout and "model utility" in r.stdout
    report = json.loads(out.read_text())
    assert report["data"] == "demo/forget01" and 0 < report["model_utility"] <= 1
    assert report["retain_model"] == "demo-retain" and 0 <= report["forget_quality"] <= 1
    too_long = subprocess.run([sys.executable, "-m", "engine", "eval", "--model", "demo", "--data",
                               str(SHARED / "forget_sample")], capture_output=True, text=True)
    assert too_long.returncode == 2 and "Traceback" not in too_long.stderr  # real answers overflow the 128-token context
    assert "do not fit in the model's context" in too_long.stderr and "forget_sample:5: prompt" in too_long.stderr
    real = tmp_path / "real"  # the first four real rows fit: no paraphrased/perturbed answers, so no FQ
    real.mkdir()
    (real / "forget_sample.json").write_text("".join((SHARED / "forget_sample.json").read_text().splitlines(True)[:4]))
    no_ref = subprocess.run([sys.executable, "-m", "engine", "eval", "--model", "demo", "--data", str(real)],
                            capture_output=True, text=True)
    assert no_ref.returncode == 0, no_ref.stderr
    assert "forget quality  unavailable" in no_ref.stdout and "no paraphrased/perturbed" in no_ref.stdout
    bad = subprocess.run([sys.executable, "-m", "engine", "eval", "--model", str(tmp_path / "nope")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "no such model directory" in bad.stderr and "Traceback" not in bad.stderr
