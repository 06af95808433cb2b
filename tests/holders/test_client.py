"""The portal's HolderClient on its own: what it refuses before any network I/O."""

from __future__ import annotations

import math

import pytest

from biometrics.holders.client import HolderClient
from biometrics.holders.protocol import HolderUnavailable

from .harness import SECRET, embedding, free_port, new_id

# --------------------------------------------------------------------------------------------
# Client behaviour without a server
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["", " ", "*", "all", "../x", "not-a-uuid"])
def test_client_refuses_invalid_ids_before_any_network_io(bad):
    # Nothing listens on this port: a ValueError (not HolderUnavailable) proves no I/O happened.
    client = HolderClient(f"http://127.0.0.1:{free_port()}", SECRET, timeout=0.5)
    good = new_id()
    with pytest.raises(ValueError, match="subject"):
        client.put_template(bad, good, embedding(), "m")
    with pytest.raises(ValueError, match="template"):
        client.put_template(good, bad, embedding(), "m")
    with pytest.raises(ValueError, match="subject"):
        client.get_subject(bad)
    with pytest.raises(ValueError, match="subject"):
        client.delete_subject(bad)


def test_client_refuses_bad_embeddings_and_settings_locally():
    client = HolderClient(f"http://127.0.0.1:{free_port()}", SECRET, timeout=0.5)
    with pytest.raises(ValueError, match="embedding"):
        client.put_template(new_id(), new_id(), [0.0] * 127, "m")
    with pytest.raises(ValueError, match="embedding"):
        client.put_template(new_id(), new_id(), [math.nan] + [0.0] * 127, "m")
    with pytest.raises(ValueError, match="model"):
        client.put_template(new_id(), new_id(), [0.0] * 128, "")
    with pytest.raises(ValueError, match="http"):
        HolderClient("ftp://example.org", SECRET)
    with pytest.raises(ValueError, match="secret"):
        HolderClient("http://127.0.0.1:1", "")
    assert SECRET not in repr(client)


def test_client_reports_connection_errors_as_unavailable():
    client = HolderClient(f"http://127.0.0.1:{free_port()}", SECRET, timeout=0.5)
    with pytest.raises(HolderUnavailable) as info:
        client.delete_subject(new_id())
    assert info.value.status is None
    assert client.health() is False
