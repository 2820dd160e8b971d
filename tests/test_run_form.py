"""ui/run_tab.py: the run form fills RunConfig by field name (no Gradio server needed)."""
import pytest

from engine.train import RunConfig
from ui.run_tab import config_from_form

FORM = dict(model="demo", data="demo/forget01", loss="npo", selector="oracle", mask_set="hand", epochs=2.0,
            lr="0.001", batch_size=4, max_steps=0, weighting="mask", lora=1, retain_eval_size=20,
            eval_max_new_tokens=16, eval_every_epoch=False, save_checkpoints=True, seed=3,
            selector_params="ratio=0.2", loss_params="beta=0.25", orthogonalize=False)


def test_values_are_converted_by_the_field_they_fill():
    cfg = config_from_form(source="selector", **FORM)
    assert cfg == RunConfig(model="demo", data="demo/forget01", loss="npo", selector="oracle", mask_set=None,
                            epochs=2, lr=0.001, batch_size=4, max_steps=None, weighting="mask", lora=True,
                            retain_eval_size=20, eval_max_new_tokens=16, eval_every_epoch=False,
                            save_checkpoints=True, seed=3, selector_params={"ratio": 0.2},
                            loss_params={"beta": 0.25}, orthogonalize=False)
    assert config_from_form(source="selector", **{**FORM, "max_steps": 7}).max_steps == 7


def test_the_source_keeps_one_of_selector_and_mask_set():
    cfg = config_from_form(source="mask set", **FORM)
    assert (cfg.selector, cfg.mask_set) == (None, "hand")
    with pytest.raises(ValueError, match="choose a mask set"):
        config_from_form(source="mask set", **{**FORM, "mask_set": None})
    with pytest.raises(ValueError, match="choose a selector"):
        config_from_form(source="selector", **{**FORM, "selector": ""})
    with pytest.raises(ValueError, match="loss parameters expects KEY=VALUE"):
        config_from_form(source="selector", **{**FORM, "loss_params": "beta"})


def test_any_runconfig_field_can_join_the_form_by_name():
    cfg = config_from_form(source="selector", **FORM, grad_accum="2", warmup_steps=5.0, lora_targets="c_attn")
    assert (cfg.grad_accum, cfg.warmup_steps, cfg.lora_targets) == (2, 5, "c_attn")
