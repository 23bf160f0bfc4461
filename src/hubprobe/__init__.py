"""hubprobe: verify what a campus JupyterHub's CPU, memory and storage limits do.

The engine behind the instructor guide: hub profiles, a sandbox whose limits
match a profile, and a CLI.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
