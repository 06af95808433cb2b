from django.dispatch import Signal

# Sent inside the deciding transaction when a decision changed which purposes are active
# for a child.
# kwargs: student, ended (set of purpose codes that stopped being active), still_active (set).
purposes_changed = Signal()
