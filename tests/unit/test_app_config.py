"""load_config and check-config: file < environment < flags; refusals name the key's path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stream.cli import main
from stream.config import ConfigError, load_config


@pytest.fixture(autouse=True)
def no_streamdrift_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own STREAMDRIFT_* variables must not leak into these tests."""
    for name in list(os.environ):
        if name.startswith("STREAMDRIFT_"):
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "streamdrift.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def refusal(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), env={})
    return str(info.value)


def test_unknown_key_is_refused_with_its_dotted_path(tmp_path: Path) -> None:
    message = refusal(tmp_path, "kafka:\n  bootstrap_server: localhost:9092\n")
    assert "kafka.bootstrap_server" in message
    assert "unknown key" in message


def test_unknown_nested_detector_key_is_refused_with_its_dotted_path(tmp_path: Path) -> None:
    message = refusal(tmp_path, "detectors:\n  numeric:\n    adwin:\n      delt: 0.01\n")
    assert "detectors.numeric.adwin.delt: unknown key" in message


def test_unknown_top_level_key_is_refused(tmp_path: Path) -> None:
    assert "detector: unknown key" in refusal(tmp_path, "detector:\n  warmup: 500\n")


@pytest.mark.parametrize(
    ("yaml_text", "path", "expected"),
    [
        ("kafka:\n  batch_size: many\n", "kafka.batch_size", "valid integer"),
        ("kafka:\n  batch_size: 0\n", "kafka.batch_size", "greater than or equal to 1"),
        ("kafka:\n  batch_size: 200000\n", "kafka.batch_size",
         "less than or equal to 100000 (or 'auto')"),
        ("kafka:\n  processing_guarantee: maybe\n", "kafka.processing_guarantee",
         "'at-least-once' or 'exactly-once'"),
        ("metrics:\n  port: 70000\n", "metrics.port", "less than or equal to 65535"),
        ("detectors:\n  warmup: 10\n", "detectors.warmup", "greater than or equal to 50"),
        ("detectors:\n  features:\n    income:\n      enabled: nope\n",
         "detectors.features.income.enabled", "valid boolean"),
    ],
    ids=["not_an_int", "below_minimum", "above_maximum", "not_a_choice", "port_range",
         "warmup_minimum", "feature_override"],
)
def test_bad_value_names_the_path_and_what_was_expected(
        tmp_path: Path, yaml_text: str, path: str, expected: str) -> None:
    message = refusal(tmp_path, yaml_text)
    line = next(line for line in message.splitlines() if line.startswith(f"{path}:"))
    assert expected in line


def test_every_bad_key_is_reported_not_only_the_first(tmp_path: Path) -> None:
    message = refusal(tmp_path, "kafka:\n  batch_size: -1\n  group_idd: x\n")
    assert "kafka.batch_size" in message
    assert "kafka.group_idd: unknown key" in message


def test_file_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    assert "expected a mapping" in refusal(tmp_path, "- kafka\n- metrics\n")


def test_file_value_beats_the_default(tmp_path: Path) -> None:
    path = write(tmp_path, "kafka:\n  batch_size: 10\n")
    assert load_config(path, env={}).kafka.batch_size == 10


def test_env_var_overrides_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "kafka:\n  batch_size: 10\n  group_id: from-file\n")
    config = load_config(path, env={"STREAMDRIFT_KAFKA__BATCH_SIZE": "20"})
    assert config.kafka.batch_size == 20
    assert config.kafka.group_id == "from-file"  # keys not in the environment keep the file's


def test_env_var_reaches_nested_detector_settings() -> None:
    config = load_config(None, env={"STREAMDRIFT_DETECTORS__NUMERIC__ADWIN__DELTA": "0.001"})
    assert config.detectors.numeric.adwin.delta == 0.001


def test_flag_override_beats_the_env(tmp_path: Path) -> None:
    path = write(tmp_path, "kafka:\n  batch_size: 10\n")
    config = load_config(path, env={"STREAMDRIFT_KAFKA__BATCH_SIZE": "20"},
                         overrides={"kafka.batch_size": 30})
    assert config.kafka.batch_size == 30


def test_unset_flag_leaves_the_env_value() -> None:
    config = load_config(None, env={"STREAMDRIFT_KAFKA__BATCH_SIZE": "20"},
                         overrides={"kafka.batch_size": None})
    assert config.kafka.batch_size == 20


def test_env_var_for_an_unknown_key_is_refused_with_its_path() -> None:
    with pytest.raises(ConfigError, match=r"kafka\.batch_siz: unknown key"):
        load_config(None, env={"STREAMDRIFT_KAFKA__BATCH_SIZ": "20"})


def test_env_var_with_a_numeric_looking_value_sets_a_string_key() -> None:
    config = load_config(None, env={"STREAMDRIFT_KAFKA__GROUP_ID": "2024",
                                    "STREAMDRIFT_KAFKA__EVENTS_TOPIC": "on"})
    assert (config.kafka.group_id, config.kafka.events_topic) == ("2024", "on")


def test_config_hash_follows_the_detectors_not_the_plumbing() -> None:
    base = load_config(None, env={})
    moved = load_config(None, env={"STREAMDRIFT_KAFKA__EVENTS_TOPIC": "elsewhere"})
    tuned = load_config(None, env={"STREAMDRIFT_DETECTORS__WARMUP": "500"})
    assert base.config_hash() == moved.config_hash()
    assert base.config_hash() != tuned.config_hash()


def test_check_config_accepts_a_good_file(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "kafka:\n  batch_size: 10\ndetectors:\n  warmup: 500\n")
    assert main(["check-config", str(path)]) == 0
    assert f"{path}: ok" in capsys.readouterr().out


def test_check_config_refuses_a_bad_file_naming_the_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "kafka:\n  bootstrap_server: localhost:9092\n")
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "kafka.bootstrap_server: unknown key" in err


def test_check_config_refuses_a_missing_file(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "absent.yaml"
    assert main(["check-config", str(missing)]) == 2
    assert str(missing) in capsys.readouterr().err


def test_check_config_applies_the_environment_as_run_does(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "kafka:\n  batch_size: 10\n")
    monkeypatch.setenv("STREAMDRIFT_KAFKA__BATCH_SIZE", "not-a-number")
    assert main(["check-config", str(path)]) == 2
    assert "kafka.batch_size: Input should be a valid integer" in capsys.readouterr().err
    monkeypatch.setenv("STREAMDRIFT_KAFKA__BATCH_SIZE", "777")
    assert main(["check-config", str(path), "--show"]) == 0
    out = capsys.readouterr().out
    assert "  batch_size: 777\n" in out  # the environment over the file's 10
    assert out.rstrip().endswith(f"{path}: ok (config_hash {load_config(path).config_hash()})")


def test_check_config_show_prints_every_key_and_masks_secrets(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    monkeypatch.setenv("STREAMDRIFT_KAFKA__SECURITY__PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("STREAMDRIFT_KAFKA__SECURITY__SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("STREAMDRIFT_KAFKA__SECURITY__USERNAME", "sd")
    monkeypatch.setenv("STREAMDRIFT_KAFKA__SECURITY__PASSWORD", "hunter2-secret")
    assert main(["check-config", "--show"]) == 0
    out = capsys.readouterr().out
    assert "hunter2-secret" not in out
    shown = yaml.safe_load(out[:out.rindex("(no file): ok")])
    assert shown["kafka"]["security"]["password"] == "**********"
    # Every key, with the value run would use: the YAML read back is the same config.
    shown["kafka"]["security"]["password"] = "hunter2-secret"
    again = load_config(write(tmp_path, yaml.safe_dump(shown)), env={})
    assert again.model_dump(mode="json") == load_config(None).model_dump(mode="json")
    assert again.kafka.security.password is not None
    assert again.kafka.security.password.get_secret_value() == "hunter2-secret"


def test_check_config_suggests_the_closest_key_for_a_typo(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "kafka:\n  batch_siz: 10\nmetrcs:\n  port: 9\n")
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "kafka.batch_siz: unknown key (did you mean 'batch_size'?)" in err
    assert "metrcs: unknown key (did you mean 'metrics'?)" in err
    monkeypatch.setenv("STREAMDRIFT_DETECTORS__WARMPU", "300")  # a typo in a variable
    assert main(["check-config"]) == 2
    assert "detectors.warmpu: unknown key (did you mean 'warmup'?)" in capsys.readouterr().err


def test_check_config_names_the_file_in_a_yaml_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "kafka:\n  batch_size: 10\n  consumer: [\n")
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f'in "{path}", line' in err
    assert "<unicode string>" not in err


def test_batch_size_is_auto_by_default_or_a_number(tmp_path: Path) -> None:
    auto = load_config(write(tmp_path, "kafka:\n  batch_size: auto\n"), env={}).kafka
    assert auto.batch_size == "auto" == load_config(env={}).kafka.batch_size
    assert auto.poll_size(400) == 50_000  # max_batch_size bounds auto
    fixed = load_config(write(tmp_path, "kafka:\n  batch_size: '700'\n"), env={}).kafka
    assert fixed.poll_size(400) == 700


@pytest.mark.parametrize("variable, value, says", [
    ("STREAMDRIFT_KAFKA__BATCH_SIZE", "abc",
     "kafka.batch_size: Input should be a valid integer, unable to parse string as an "
     "integer (or 'auto') (got 'abc') (from STREAMDRIFT_KAFKA__BATCH_SIZE)"),
    ("STREAMDRIFT_KAFKA_BATCH_SIZE", "5",
     "kafka_batch_size: unknown key (from STREAMDRIFT_KAFKA_BATCH_SIZE; a key in a section "
     "takes two underscores: STREAMDRIFT_KAFKA__BATCH_SIZE)"),
    ("STREAMDRIFT_DEBUG", "1", "debug: unknown key (from STREAMDRIFT_DEBUG)"),
])
def test_a_bad_value_from_the_environment_names_its_variable(
        variable: str, value: str, says: str) -> None:
    """Before, the key's path only: a variable set long ago in a shell or a manifest was
    hard to find, and one underscore for two got no hint."""
    with pytest.raises(ConfigError) as exc:
        load_config(env={variable: value})
    assert str(exc.value) == says


@pytest.mark.parametrize("text, path", [
    ("kafka:\n  batch_size: true\n", "kafka.batch_size"),
    ("kafka:\n  max_batch_size: yes\n", "kafka.max_batch_size"),
    ("metrics:\n  port: on\n", "metrics.port"),
    ("detectors:\n  numeric:\n    adwin:\n      delta: true\n", "detectors.numeric.adwin.delta"),
])
def test_a_boolean_where_a_number_is_asked_is_refused(
        tmp_path: Path, text: str, path: str) -> None:
    """YAML reads true, yes and on as booleans, and pydantic took one as 1: `batch_size:
    true` was a batch of one record."""
    with pytest.raises(ConfigError) as exc:
        load_config(write(tmp_path, text), env={})
    assert str(exc.value).startswith(f"{path}: Input should be a number, not a boolean")


def test_a_boolean_setting_still_takes_a_boolean(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "detectors:\n  numeric:\n    adwin:\n"
                                         "      enabled: false\n"), env={})
    assert config.detectors.numeric.adwin.enabled is False


def test_check_config_takes_the_file_as_config_too(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every other command takes --config FILE; check-config refused it (helper-16)."""
    path = write(tmp_path, "kafka:\n  batch_size: 7\n")
    assert main(["check-config", "--config", str(path)]) == 0
    assert f"{path}: ok" in capsys.readouterr().out
    other = tmp_path / "other.yaml"
    other.write_text("kafka:\n  batch_size: 8\n", encoding="utf-8")
    assert main(["check-config", str(path), "--config", str(other)]) == 2
    assert "takes one file" in capsys.readouterr().err
