"""contiv-netctl's command line: ``-o`` before or after the subcommand (kubectl's habit)."""

from __future__ import annotations

import pytest

from apps.netctl.main import parser


@pytest.mark.parametrize(("argv", "output"), [
    (["pods"], "table"),
    (["-o", "json", "pods"], "json"),
    (["pods", "-o", "json"], "json"),
    (["pods", "--node", "node1", "--output", "yaml"], "yaml"),
    (["-o", "yaml", "scheduler", "dump", "-o", "json"], "json"),  # the later one wins
    (["-o", "json", "check"], "json"),
    (["check", "-o", "json"], "json"),
])
def test_output_is_accepted_before_and_after_the_subcommand(argv: list[str], output: str) -> None:
    assert parser().parse_args(argv).output == output


def test_a_bad_output_after_the_subcommand_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["pods", "-o", "xml"])
    assert "invalid choice: 'xml'" in capsys.readouterr().err
