# TEMPORARY re-export for biometrics/erasure.py; removed when the erasure split merges.
from .holders.protocol import HolderRejected, HolderUnavailable

__all__ = ["HolderRejected", "HolderUnavailable"]
