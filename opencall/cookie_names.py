"""The names of the browser's cookies: the REST API sets and reads them, the Socket.IO adapter reads them."""

SESSION_COOKIE = "opencall_session"  # the signed-in session's token
ANON_COOKIE = "opencall_anon"  # the anonymous browser's signed id (services/anonymous.py)
