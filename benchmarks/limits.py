"""The bounds of the benchmark commands' resource arguments (read by the command line and by the suites)."""

SOAK_MAX_UPDATES = 1_000_000  # tinct bench soak --updates/--window/--rss-every
SOAK_MAX_SHARING = 64  # tinct bench soak --sharing (threads on one backend)
LOAD_MAX_SESSIONS = 64  # tinct bench load --sessions
LOAD_MAX_UPDATES = 1000  # tinct bench load --updates (per session)
