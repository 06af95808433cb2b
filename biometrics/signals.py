from django.dispatch import Signal

# Sent after the transaction that sealed erasures commits (their receipts are signed and
# stored). The portal listens and tells the parents.
# kwargs: requests (list of ErasureRequest, verified).
erasure_sealed = Signal()
