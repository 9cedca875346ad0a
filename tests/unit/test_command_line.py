"""The command line's own answers: a wrong argument is refused with the usage of the
command it was given to, and the help says what the tool is in words."""

from __future__ import annotations

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
