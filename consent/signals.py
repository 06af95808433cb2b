from django.dispatch import Signal

# Sent inside the deciding transaction when a decision changed which purposes are active
# for a child.
# kwargs: student, ended (set of purpose codes that stopped being active), still_active (set).
purposes_changed = Signal()

# Sent while a consent receipt is built, to learn where the child's data is stored. Consent
# knows no storage; each app that stores the data answers with a list of system names.
# kwargs: school_id. Replies: list[str].
storage_locations_asked = Signal()
