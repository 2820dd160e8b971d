"""`check_run`: every check a run's config must pass before anything heavy is loaded, written once
for the CLI, the app's jobs and `prepare`."""
from __future__ import annotations

from ..data import Benchmark, DataError
from ..losses import get_loss
from ..models.loading import check_model_dir, load_tokenizer
from ..resolve import load_data, model_path
from .config import RunConfig


def check_run(config: RunConfig, store=None) -> Benchmark:
    """Raise ValueError naming the problem for a run that cannot start; returns the loaded data.

    Checks the config itself (RunConfig.check; unknown names too), the model directory, the
    data loading, an empty forget split, a loss that needs retain data on a split without it, a
    missing or empty mask set, a mask set made for other data or for another tokenizer
    (fingerprint). Its fit per sample (text, label positions) is checked when its weights are
    built (`weights_from_mask_set`).
    """
    try:
        config.check()
    except KeyError as err:  # unknown loss or selector names
        raise ValueError(str(err.args[0]) if err.args else str(err)) from None
    check_model_dir(model_path(config.model))  # ModelLoadError (a ValueError) names the problem
    try:
        bench = load_data(config.data, protocol=config.protocol)
    except DataError as err:
        raise ValueError(str(err)) from None
    if not bench.forget:
        raise ValueError(f"{bench.name}: the forget split is empty")
    spec = get_loss(config.loss)
    kwargs = config.loss_kwargs()
    if spec.needs_retain(kwargs) and not bench.retain:
        raise ValueError(f"loss {config.loss!r} needs retain data (its {spec.retain_param} = "
                         f"{kwargs[spec.retain_param]}), but {bench.name} has no retain split; "
                         f"use a loss without one (ga, dto, tpo) or set {spec.retain_param}=0")
    if config.mask_set is not None:
        if store is None:
            raise ValueError("a mask-set run needs the store that holds the mask set")
        ms = store.get_mask_set(config.mask_set)  # NotFound is a ValueError
        if not ms.marks_tokens:
            raise ValueError(f"mask set {config.mask_set!r} is empty: it marks no tokens of any sample")
        if ms.covered(bench.forget) == 0:
            raise ValueError(f"mask set {config.mask_set!r} was made for data {ms.data!r}; it covers none "
                             f"of the {len({s.uid for s in bench.forget})} forget samples of {config.data!r}")
        ms.check_tokenizer(load_tokenizer(model_path(config.model)))  # ValueError: made for another tokenizer
    return bench
