"""Each notebook's wall time in nbval's summary: setup, run and teardown.

All notebooks run in one pytest session (one start-up, not twelve); this is
how `make nbval` still says which chapter costs what.
"""
from collections import defaultdict

import pytest

_seconds: defaultdict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _seconds[report.nodeid.split("::")[0]] += report.duration


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _seconds:
        return
    terminalreporter.section("seconds per notebook")
    for notebook, seconds in _seconds.items():
        terminalreporter.write_line(f"{seconds:7.0f} s  {notebook}")
    terminalreporter.write_line(f"{sum(_seconds.values()):7.0f} s  in all")
