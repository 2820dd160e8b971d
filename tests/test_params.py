"""KEY=VALUE parameter parsing shared by the CLI and the app."""
import pytest

from engine.params import parse_params


def test_parse_params_reads_json_values_and_strings():
    assert parse_params(["ratio=0.2", "mode=loop", "with_question=true", "k=3"]) == \
        {"ratio": 0.2, "mode": "loop", "with_question": True, "k": 3}
    assert parse_params("beta=0.25, forget = npo\nalpha=1") == {"beta": 0.25, "forget": "npo", "alpha": 1}
    assert parse_params("") == {} and parse_params(None) == {}


@pytest.mark.parametrize("bad", [["ratio"], "=3", "a=1, b"])
def test_parse_params_names_the_bad_item(bad):
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_params(bad)
