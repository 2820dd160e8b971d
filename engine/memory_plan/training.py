"""Planning a training step (`engine.train.step`, one device): its peak (`estimate_training`), its
two phases (`training_phases`, also read by `sharded`) and the settings that fit (`plan_training`)."""
from __future__ import annotations

from .plan import Plan
from .shape import ModelShape
from .terms import (_act, _peak, adamw_bytes, autocast_weight_bytes, block_activation_bytes, kl_bytes,
                    log_softmax_bytes, logits_bytes, output_gradient_bytes, recomputed_block_bytes, weights_bytes)


def estimate_training(s: ModelShape, batch: int, seq: int, b: int, loss: str = "ga",
                      checkpointing: bool = False, retain: bool = False, reference_copy: bool = False,
                      orthogonalize: bool = False, separate_retain_backward: bool = False,
                      autocast: bool = False, device: str = "cpu") -> dict[str, int]:
    """One AdamW step of `engine.train.step` at its peak, the first step (states are created): the
    larger of two phases beside the weights P·b (and the reference copy, another P·b, when a loss
    needs the KL without LoRA, e.g. `dto`). b: the weights' bytes; autocast: the forward runs in
    bf16 over them (activations a = 2, `autocast_weight_bytes`).

    backward phase: the forget batch's block activations and the largest of: the end of its
    forward (`logits_bytes` with a backward), the backward's first step (`output_gradient_bytes`)
    or, with checkpointing, a recomputed block (`recomputed_block_bytes`); with the KL, the logits
    and `kl_bytes`; a retain batch in the same graph adds its own activations and logits while the
    forget side keeps only its log-softmax (separate_retain_backward: backpropagated on its own,
    only the forget graph is live); orthogonalize: the two gradient lists g_f, g_p (2·P_t·b) taken
    while the graph is still held.
    step phase: gradients P_t·b and AdamW's states (and temporaries where it is not fused; `adamw_bytes`).
    """
    weights, backward, step = training_phases(s, batch, seq, b, loss, checkpointing, retain, reference_copy,
                                              orthogonalize, separate_retain_backward, autocast, device)
    return _peak(weights, backward, step)


def training_phases(s: ModelShape, batch: int, seq: int, b: int, loss: str = "ga",
                    checkpointing: bool = False, retain: bool = False, reference_copy: bool = False,
                    orthogonalize: bool = False, separate_retain_backward: bool = False,
                    autocast: bool = False, device: str = "cpu") -> tuple[int, dict[str, int], dict[str, int]]:
    """(weights bytes, backward phase's terms, step phase's terms) of `estimate_training`."""
    a, _ = _act(b, autocast)
    backward = {"activations": block_activation_bytes(s, batch, seq, b, checkpointing, autocast)}
    if autocast:
        backward["autocast_weights"] = autocast_weight_bytes(s)
    # the loss side: never two of these at once, the largest counts
    loss_side = {"logits": logits_bytes(s, batch, seq, a, backward=True),
                 "output_gradients": output_gradient_bytes(s, batch, seq, b, autocast)}
    if checkpointing:
        loss_side["recomputed_block"] = recomputed_block_bytes(s, batch, seq, b, autocast)
    largest = max(loss_side, key=loss_side.get)
    loss_terms = {largest: loss_side[largest]}
    if reference_copy:  # kl_ref runs beside the current logits
        loss_terms = {"logits": loss_side["logits"], "kl": kl_bytes(s, batch, seq, a)}
    if retain and not separate_retain_backward:
        backward["retain_activations"] = backward["activations"]
        backward["log_softmax"] = log_softmax_bytes(s, batch, seq)  # the forget side's, beside the retain's
        backward.update({f"retain_{k}": v for k, v in loss_terms.items()})
    else:
        backward.update(loss_terms)
    step = {"gradients": s.trainable * b, **adamw_bytes(s, b, device)}
    if reference_copy:
        backward["reference_copy"] = step["reference_copy"] = weights_bytes(s, b)
    if orthogonalize:
        backward["orthogonal_grads"] = 2 * s.trainable * b
    return weights_bytes(s, b), backward, step


def plan_training(s: ModelShape, batch: int, seq: int, budget: int | None, b: int = 4, loss: str = "ga",
                  lora: bool = False, lora_r: int = 8, retain: bool = False, reference_copy: bool = False,
                  orthogonalize: bool = False, checkpointing: bool | None = None, autocast: bool = False,
                  device: str = "cpu") -> Plan:
    """Training settings that fit, tried in order: as asked; gradient checkpointing on; the retain
    batch backpropagated on its own; LoRA (suggested, rank `lora_r`; its reference is the adapter
    switched off, so no copy). checkpointing=None lets the plan decide; True/False is kept.
    autocast, device: as `estimate_training`.
    The first fitting setting is chosen; when none fits, the last one is returned not fitting."""
    def build(ckpt, sep, use_lora, notes):
        shape = s.with_lora(lora_r) if use_lora and s.lora_r == 0 else s
        terms = estimate_training(shape, batch, seq, b, loss, ckpt, retain, reference_copy and not use_lora,
                                  orthogonalize, sep, autocast, device)
        settings = {"gradient_checkpointing": ckpt, "separate_retain_backward": sep, "lora": use_lora,
                    "lora_suggested": use_lora and not lora}
        return Plan(f"training {loss}", terms, budget, settings, list(notes))

    ckpt0 = bool(checkpointing)
    tries = [(ckpt0, False, lora, [])]
    if checkpointing is None:
        tries.append((True, False, lora, ["gradient checkpointing on to fit"]))
    ck = True if checkpointing is None else ckpt0
    if retain:
        tries.append((ck, True, lora, ["retain batch backpropagated on its own to fit"]))
    if not lora:
        tries.append((ck, retain, True, [f"full fine-tuning does not fit: LoRA (r={lora_r}) suggested"]))
    plan = None
    for ckpt, sep, use_lora, notes in tries:
        plan = build(ckpt, sep, use_lora, notes)
        if plan.fits:
            return plan
    plan.notes.append("no setting fits: use a smaller model, batch or sequence, or a larger device")
    return plan
