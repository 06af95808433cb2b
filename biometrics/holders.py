"""The portal's side of the holder protocol."""

from __future__ import annotations

from .holder_protocol import HolderClient
from .models import Holder


def client_for(holder: Holder, timeout: float = 5.0) -> HolderClient:
    return HolderClient(holder.base_url, holder.secret, timeout=timeout)
