"""The command line's own answers: a wrong argument is refused with the usage of the
command it was given to, and the help says what the tool is in words."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cli.main import main


@pytest.mark.parametrize(
    ("argv", "usage", "unknown"),
    [
        (["dev", "--prot", "8010"], "usage: python -m app dev [-h] [--host HOST] [--port PORT]",
         "--prot 8010"),
        (["dlq", "list", "catalog", "--bogus"], "usage: python -m app dlq list", "--bogus"),
        (["broker", "declare", "extra"], "usage: python -m app broker declare", "extra"),
    ],
)  # fmt: skip
def test_an_unknown_argument_gets_its_own_commands_usage(
    argv: list[str], usage: str, unknown: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(usage), err
    assert f"unrecognized arguments: {unknown}\n" in err


def test_the_help_says_what_the_tool_is(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "``" not in out and "contract" not in out
    assert "COMMAND --help" in out and "web" in out


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["dev", "--port", "70000"], "a port is 1 to 65535: 70000"),
        (["web", "--port", "0"], "a port is 1 to 65535: 0"),
        (["api", "ordering", "--port", "http"], "not a port number: 'http'"),
        (["outbox", "republish", "ordering", "--since", "0001-01-01T00:00:00+01:00"],
         "a time between years 1 and 9999 in UTC"),
        (["outbox", "republish", "ordering", "--since", "2026-01-01",
          "--until", "9999-12-31T23:00:00-05:00"], "a time between years 1 and 9999 in UTC"),
    ],
)  # fmt: skip
def test_a_value_out_of_range_is_a_usage_error_in_one_line(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # A port above 65535 once served on the port modulo 65536; a time near year 1 ended in
    # a traceback from the UTC conversion.
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err


def test_a_broker_url_of_no_known_scheme_is_a_bad_setting_that_shows_no_password(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BROKER_URL", "amqp:guest:SECRETPW@h://")
    assert main(["outbox", "status"]) == 1
    err = capsys.readouterr().err
    assert "BROKER_URL must be amqp://" in err and "SECRETPW" not in err


def test_dev_with_an_embedded_broker_file_it_cannot_open_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # A folder where the file should be: refused before anything serves, with the setting.
    monkeypatch.setenv("BROKER_URL", "memory://")
    monkeypatch.setenv("EMBEDDED_BROKER_PATH", str(tmp_path))
    monkeypatch.setenv("ORDERING_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'o.db'}")
    monkeypatch.setenv("CATALOG_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")
    assert main(["dev", "--port", "1"]) == 1
    err = capsys.readouterr().err
    assert "EMBEDDED_BROKER_PATH: the embedded broker cannot keep its queues in" in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["outbox", "status"],
        ["inbox", "show", "catalog", "0b1d5e6f-0000-4000-8000-000000000404"],
        ["outbox", "failed", "ordering"],
    ],
)
def test_a_reading_command_on_a_sqlite_file_not_made_yet_makes_none(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    argv: list[str],
) -> None:
    monkeypatch.setenv("ORDERING_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'o.db'}")
    monkeypatch.setenv("CATALOG_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")
    with pytest.raises(SystemExit) as exited:  # a FatalError: its line is logged, exit 1
        main(argv)
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert "does not exist: run `python -m app migrate`" in err, err
    assert list(tmp_path.iterdir()) == []
