# TEMPORARY re-export for biometrics/erasure.py; removed when the erasure split merges.
# (Only client_for goes; the docstring stays. It lives here, not in biometrics/holders.py,
# because this package shadows a module of that name.)
"""Holders: the protocol contract (``protocol``) and the portal's client (``client``).

Standard library only, like the reference holder that shares the contract. The portal gets a
client for a configured holder with ``Holder.client(timeout=...)``.
"""


def client_for(holder, timeout: float = 5.0):
    return holder.client(timeout=timeout)
