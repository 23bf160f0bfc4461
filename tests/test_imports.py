"""Slow imports stay out of what every build and every server start imports.

jsonschema 4.25+ imports rfc3987-syntax, which builds a grammar at import
(2-3 s); nbformat and jupyter_server both import jsonschema. The bound in
pyproject.toml keeps it out; this fails if an upgrade brings it back.
"""

from __future__ import annotations

import subprocess
import sys


def test_nbformat_and_the_server_do_not_import_rfc3987_syntax() -> None:
    code = (
        "import sys, nbformat, jupyter_server.serverapp, jupyter_events.validators;"
        "print('rfc3987_syntax' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
