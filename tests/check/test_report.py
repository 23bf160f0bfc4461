"""What the report shows of a cell, on made-up sources (no sandbox)."""

from __future__ import annotations

import pytest

from hubprobe.check.report import work_line


@pytest.mark.parametrize(
    ("source", "line"),
    [
        ("import pandas as pd\n\ndf = pd.read_csv('big.csv')\ndf.head()", "df = pd.read_csv('big.csv')"),
        ("# draw them all\nimport numpy as np\nx = np.random.default_rng(0).normal(size=10**8)",
         "x = np.random.default_rng(0).normal(size=10**8)"),
        ("import numpy as np\nprint('ready')", "print('ready')"),
        ("import numpy as np", "import numpy as np"),
        ("# only a comment", "# only a comment"),
        ("%matplotlib inline\nmodel.fit(X, y)", "model.fit(X, y)"),
    ],
)  # fmt: skip
def test_the_code_column_shows_the_line_that_does_the_work(source: str, line: str) -> None:
    assert work_line(source) == line
