"""Holders: the protocol contract (``protocol``) and the portal's client (``client``).

Standard library only, like the reference holder that shares the contract. The portal gets a
client for a configured holder with ``Holder.client(timeout=...)``.
"""
