"""The sizes a memory plan needs, read from a model or its config (`ModelShape`), and a Llama
shape built from published sizes (`llama_shape`). Notation: the package doc (`engine.memory_plan`)."""
from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class ModelShape:
    """The sizes the estimates need. family: 'gpt2' or 'llama' (see the module doc); kv_hidden: H_kv
    (0 = H); activation: the MLP's activation name; tied: the output layer shares the embedding's
    weight; lora_r > 0: P_t are the adapters' (`trainable`)."""

    params: int
    layers: int
    hidden: int
    inner: int
    vocab: int
    heads: int = 1
    lora_r: int = 0
    kv_hidden: int = 0
    family: str = "gpt2"
    activation: str = "gelu_new"
    tied: bool = True

    @property
    def kv(self) -> int:
        """H_kv: the width of the keys and of the values."""
        return self.kv_hidden or self.hidden

    @property
    def layer_linear_params(self) -> int:
        """Weights of one block's projections: gpt2 4H² + 2HI (qkv, out, up, down); llama
        2H² + 2H·H_kv + 3HI (q, o; k, v; gate, up, down)."""
        H = self.hidden
        if self.family == "llama":
            return 2 * H * H + 2 * H * self.kv + 3 * H * self.inner
        return 4 * H * H + 2 * H * self.inner

    @property
    def trainable(self) -> int:
        """P_t: every parameter, or the LoRA adapters' r·(in + out) summed over every projection
        (`all-linear`): gpt2 r·L·(8H + 2I), llama r·L·(9H + 2H_kv + 3I)."""
        if self.lora_r > 0:
            H, inner = self.hidden, self.inner
            per_layer = 9 * H + 2 * self.kv + 3 * inner if self.family == "llama" else 8 * H + 2 * inner
            return self.lora_r * self.layers * per_layer
        return self.params

    def with_lora(self, r: int) -> "ModelShape":
        return replace(self, lora_r=r)

    @classmethod
    def from_config(cls, config, params: int) -> "ModelShape":
        """From a transformers config and the parameter count. family 'llama' when the config has
        rms_norm_eps (an RMSNorm decoder with a gated MLP), else 'gpt2'."""
        hidden = getattr(config, "hidden_size", None) or config.n_embd
        layers = getattr(config, "num_hidden_layers", None) or config.n_layer
        inner = getattr(config, "intermediate_size", None) or getattr(config, "n_inner", None) or 4 * hidden
        heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_head", 1)
        kv_heads = getattr(config, "num_key_value_heads", None) or heads
        head_dim = getattr(config, "head_dim", None) or hidden // heads
        family = "llama" if getattr(config, "rms_norm_eps", None) is not None else "gpt2"
        activation = getattr(config, "hidden_act", None) or getattr(config, "activation_function", "gelu_new")
        tied = bool(getattr(config, "tie_word_embeddings", True))
        return cls(params, layers, hidden, inner, config.vocab_size, heads, 0, kv_heads * head_dim, family,
                   str(activation), tied)

    @classmethod
    def from_model(cls, model) -> "ModelShape":
        """From a loaded model (tied weights counted once); a peft model gives its LoRA rank."""
        params = sum(p.numel() for p in model.parameters())
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        base = getattr(model, "get_base_model", lambda: model)()
        shape = cls.from_config(base.config, params)
        peft_cfg = getattr(model, "peft_config", None)
        if peft_cfg and trainable < params:
            shape = replace(shape, params=params - trainable, lora_r=next(iter(peft_cfg.values())).r)
        return shape


def llama_shape(hidden: int, layers: int, inner: int, vocab: int, kv_hidden: int, tied: bool) -> ModelShape:
    """A Llama-family ModelShape with its parameter count from the sizes (embedding, head when
    untied, per layer the projections and two RMSNorms, the final norm)."""
    s = ModelShape(0, layers, hidden, inner, vocab, hidden // 128, 0, kv_hidden, "llama", "silu", tied)
    params = vocab * hidden * (1 if tied else 2) + layers * (s.layer_linear_params + 2 * hidden) + hidden
    return replace(s, params=params)
