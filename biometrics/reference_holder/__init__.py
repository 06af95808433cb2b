"""Guardian's reference holder: a standalone, stdlib-only HTTP service (no Django).

Run it with ``python -m biometrics.reference_holder --port 8765 --db holder.sqlite3
--secret-file secret.txt``, or embed it via :func:`make_server` / :func:`serve`.
"""

from biometrics.reference_holder.server import (
    HolderHTTPServer,
    HolderStore,
    main,
    make_server,
    serve,
)

__all__ = ["HolderHTTPServer", "HolderStore", "main", "make_server", "serve"]
