"""One reference holder process shared by the tests of this package that need a running one."""

from __future__ import annotations

import pytest

from biometrics.holders.client import HolderClient

from .harness import HolderProcess, running_holder


@pytest.fixture(scope="package")
def holder(tmp_path_factory) -> HolderProcess:
    with running_holder(tmp_path_factory.mktemp("holder")) as proc:
        yield proc


@pytest.fixture
def client(holder) -> HolderClient:
    """A client for the shared holder (shadows pytest-django's ``client`` in this package)."""
    return holder.client()
