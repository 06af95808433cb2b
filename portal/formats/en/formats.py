# Dates as a UK school writes them (Django's "en" defaults are American).
DATE_FORMAT = "j M Y"
DATETIME_FORMAT = "j M Y H:i"
SHORT_DATETIME_FORMAT = "j M H:i"
