"""What every test runs under: the `authz serve` processes tests start serve from one process.

The default, ``--workers auto``, starts one worker per usable CPU under a supervisor;
the tests that start a server read one process's log and pid. A test of workers asks
for them with ``--workers``, which overrides this; a test of ``auto`` removes the
variable from its child's environment. `make run` and real users keep the default.
"""

from __future__ import annotations

import os

os.environ["AUTHZ_WORKERS"] = "1"
