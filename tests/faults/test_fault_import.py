"""Case 10: a mask-set import is checked whole before anything is stored (size limit, the named
tokenizer's fingerprint and label positions, sample ids, a marked token), and a set made for
another tokenizer is refused again at run time, before a run is recorded."""
from __future__ import annotations

import pytest

from faultkit import assert_one_line_error, cli


@pytest.fixture()
def exported(home, builtin_tokenizer, data_dir):
    """A good export of a set over the tiny data's forget samples, made with the built-in tokenizer."""
    from engine.fingerprint import text_hash, tokenizer_fingerprint
    from engine.resolve import load_data
    from engine.store import Store
    from engine.tokens import encode_samples

    samples = load_data(str(data_dir)).forget
    counts = encode_samples(builtin_tokenizer, samples).label_mask.sum(dim=1).tolist()

    masks = {s.uid: (text_hash(s.question, s.answer), [0, 1] + [0] * (int(n) - 2)) for s, n in zip(samples, counts)}
    store = Store(home / "store.sqlite")
    store.create_mask_set("good", "tiny", str(data_dir), tokenizer_fingerprint(builtin_tokenizer), masks=masks)
    payload = store.export_mask_set("good")
    store.delete_mask_set("good")
    return store, payload, samples


def _import(store, payload, tokenizer, samples, name="imported"):
    return store.import_mask_set(payload, name, tokenizer=tokenizer, samples=samples)


def _rehash(payload):
    from engine.store.records import SampleMask
    from engine.store.transfer import mask_hash

    masks = {u: SampleMask(m["text_hash"], m["mask"], m["edited"]) for u, m in payload["masks"].items()}
    payload["hash"] = mask_hash(payload["tokenizer_fingerprint"], masks)
    return payload


def test_a_good_set_imports_and_opens(exported, builtin_tokenizer):
    store, payload, samples = exported
    assert _import(store, payload, builtin_tokenizer, samples) == "imported"
    assert store.get_mask_set("imported").masks_for(samples, builtin_tokenizer)[0][:2] == [0, 1]


def test_another_tokenizers_fingerprint_is_refused_at_import(exported, builtin_tokenizer):
    store, payload, samples = exported
    payload = _rehash({**payload, "tokenizer_fingerprint": "0123456789abcdef"})  # same lengths, other tokenizer
    with pytest.raises(ValueError, match="made for tokenizer 0123456789abcdef"):
        _import(store, payload, builtin_tokenizer, samples)
    assert store.list_mask_sets() == []


def test_lengths_of_another_tokenizer_are_refused_at_import(exported, builtin_tokenizer):
    store, payload, samples = exported
    uid = next(iter(payload["masks"]))
    payload["masks"][uid]["mask"] = payload["masks"][uid]["mask"] + [0]
    with pytest.raises(ValueError, match=f"label positions for sample {uid}"):
        _import(store, _rehash(payload), builtin_tokenizer, samples)
    assert store.list_mask_sets() == []


def test_sample_ids_not_in_the_data_are_refused_at_import(exported, builtin_tokenizer):
    store, payload, samples = exported
    payload["masks"]["nowhere:7"] = dict(next(iter(payload["masks"].values())))
    with pytest.raises(ValueError, match=r"1 of 5 sample ids are not in .*first: 'nowhere:7'"):
        _import(store, _rehash(payload), builtin_tokenizer, samples)
    assert store.list_mask_sets() == []


def test_a_set_marking_nothing_is_refused_at_import(exported, builtin_tokenizer):
    store, payload, samples = exported
    for m in payload["masks"].values():
        m["mask"] = [0] * len(m["mask"])
    with pytest.raises(ValueError, match="marks no tokens"):
        _import(store, _rehash(payload), builtin_tokenizer, samples)
    assert store.list_mask_sets() == []


def test_too_many_samples_names_the_limit(exported, monkeypatch):
    from engine.store import transfer

    store, payload, _ = exported
    monkeypatch.setattr(transfer, "MAX_IMPORT_SAMPLES", 3)
    with pytest.raises(ValueError, match="4 samples is over the limit of 3"):
        store.import_mask_set(payload)


def test_a_file_over_the_size_limit_is_refused_before_reading(tmp_path):
    from engine.store.transfer import MAX_IMPORT_BYTES, read_import_file

    big = tmp_path / "big.json"
    with open(big, "wb") as fh:
        fh.truncate(MAX_IMPORT_BYTES + 1)  # sparse: the size is what counts
    with pytest.raises(ValueError, match=r"big.json: 21.0 MB is over the mask-set import limit of 21 MB"):
        read_import_file(big)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json is not a mask-set JSON file"):
        read_import_file(tmp_path / "bad.json")


def test_a_set_of_another_tokenizer_is_refused_before_a_run_is_recorded(exported, capsys, model_dir, data_dir):
    """Imported without the fit check (the store API allows it), the set still cannot train."""
    store, payload, _ = exported
    store.import_mask_set(_rehash({**payload, "tokenizer_fingerprint": "0123456789abcdef"}), "foreign")
    code, _, err = cli(["unlearn", "--model", model_dir, "--data", data_dir, "--loss", "ga", "--mask-set",
                        "foreign", "--no-eval", "--device", "cpu"], capsys)
    assert_one_line_error(code, err, 2, "'foreign' was made for tokenizer 0123456789abcdef")
    assert store.list_runs() == []
