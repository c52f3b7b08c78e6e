"""Errors carry the setting they are about as data; each front end names it its own way, and
every command says the same thing about the same mistake."""

from __future__ import annotations

import pytest
from training_helpers import MINI

from kdcli.cli.options import option_name
from kdcli.core.errors import KdcliError, option_ref
from kdcli.core.validation import check_int, check_number
from kdcli.data.splits import load_for_option


def test_an_error_names_its_setting_in_python_and_as_an_option_on_the_command_line():
    err = KdcliError(
        "is unknown", option="layer_strategy", value="bogus", fix="choose one of uniform, first"
    )
    assert (err.option, err.value, err.fix) == (
        "layer_strategy",
        "bogus",
        "choose one of uniform, first",
    )
    assert str(err) == "layer_strategy 'bogus' is unknown: choose one of uniform, first"
    assert (
        err.render(option_name)
        == "--layer-strategy 'bogus' is unknown: choose one of uniform, first"
    )
    both = KdcliError(
        f"{option_ref('vocab_size')} and {option_ref('min_frequency')} were both given",
        fix="use one of them",
    )
    assert str(both) == "vocab_size and min_frequency were both given: use one of them"
    assert (
        both.render(option_name)
        == "--vocab-size and --min-frequency were both given: use one of them"
    )
    assert (
        KdcliError("no " + option_ref("models") + " given").render(option_name) == "no MODEL given"
    )


def test_validators_say_the_same_thing_about_the_same_mistake():
    with pytest.raises(KdcliError) as err:
        check_int("batch_size", 0)
    assert str(err.value) == "batch_size 0 must be at least 1"
    with pytest.raises(KdcliError, match="must be an integer of at least 1"):
        check_int("batch_size", 1.5)
    with pytest.raises(KdcliError, match="alpha 2 must be between 0 and 1"):
        check_number("alpha", 2, minimum=0, maximum=1)
    with pytest.raises(
        KdcliError, match="lr nan must be a finite number, greater than zero and below 1"
    ):
        check_number("lr", float("nan"), above=0, below=1)
    check_int("threads", None, optional=True)


def test_data_given_as_another_setting_is_named_by_that_setting():
    # the languages of --vocab-from data are checked against --vocab-from, not "--data"
    with pytest.raises(KdcliError) as err:
        load_for_option(str(MINI), "vocab_from", "train", ["xx-XX"])
    message = err.value.render(option_name)
    assert message.startswith("--languages: xx-XX not in --vocab-from ")
    assert "--data" not in message
    with pytest.raises(KdcliError) as err:
        load_for_option("./no-such-data.jsonl", "calib_data")
    assert err.value.option == "calib_data"
    assert err.value.render(option_name).startswith("--calib-data './no-such-data.jsonl'")


# every command that takes a setting gives the same message for the same bad value
SHARED = [
    ("--batch-size", "0", "--batch-size 0 must be at least 1"),
    ("--max-length", "1", "--max-length 1 must be at least 2"),
]


@pytest.mark.parametrize(("option", "value", "message"), SHARED)
def test_a_shared_option_gets_one_message_from_every_command(
    option, value, message, cli, make_teacher, tmp_path
):
    teacher = make_teacher("bert")
    commands = [
        ["finetune", teacher, "--data", MINI, "--out", tmp_path / "f"],
        ["distill", "--student", teacher, "--data", MINI, "--no-kd", "--out", tmp_path / "d"],
        ["eval", teacher, "--data", MINI],
        ["export", teacher, "--out", tmp_path / "e"],
    ]
    for command in commands:
        result = cli(*command, option, value)
        assert result.exit_code == 2, result.output
        assert result.stderr.strip() == f"Error: {message}", command[0]
