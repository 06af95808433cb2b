"""Guardian's reference holder: a standalone HTTP service for the holder protocol (no Django).

Standard library only, so a vendor can run it with nothing but Python. It keeps its data in its
own SQLite file (WAL mode), per tenant (each school signs with its own key), and answers signed
JSON requests over persistent HTTP/1.1 connections::

    PUT    /subjects/{subject}/templates/{template}   store/replace one template (201 / 200;
                                                       410 if the subject was erased since)
    GET    /subjects/{subject}                         everything held about one subject
    DELETE /subjects/{subject}                         erase it (idempotent) -> {"erased": n}
    POST   /erasures  {"subjects": [...]}              erase a list -> {"erased": {id: n}}
    GET    /subjects?cursor=&limit=                    keyset-paginated list of subject ids
    POST   /events                                     record a recognition event
    GET    /health                                     liveness (unsigned)

The signature scheme is in :mod:`biometrics.holders.protocol`. Layers: ``store`` (SQLite),
``routes`` (endpoints), ``http`` (transport, :func:`make_server`), ``cli`` (:func:`main`,
:func:`serve`). Run it with ``python -m biometrics.reference_holder --port 8765
--db holder.sqlite3 --secret-file secret.txt``, or embed it via :func:`make_server` /
:func:`serve`.
"""

from .cli import main, serve
from .http import HolderHTTPServer, make_server
from .store import HolderStore

__all__ = ["HolderHTTPServer", "HolderStore", "main", "make_server", "serve"]
