from django.dispatch import Signal

# Sent inside the transaction of a change that ended purposes for children (consent knows no
# faces: the apps that hold data decide what that means for it).
# kwargs: ended (set of purpose codes that stopped being active), at (the instant of the
# change), and either student (one child, with still_active: the set left) — a decision or a
# leaver — or students (a list of children, each of whom lost every code in `ended`) — a
# purpose disabled for a whole school, sent once per chunk of its children. `loaded` (optional,
# True): the students come from `load_for_rule` with every input written since (a decision).
purposes_changed = Signal()

# Sent while a consent receipt is built, to learn where the child's data is stored. Consent
# knows no storage; each app that stores the data answers with a list of system names.
# kwargs: school_id. Replies: list[str].
storage_locations_asked = Signal()
