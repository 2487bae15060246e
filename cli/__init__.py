"""The ``tinct`` command line: one module per command (:mod:`tinct.cli.main` lists them).

Each command module defines ``register(subparsers)`` and ``run(args)``, and imports only the standard
library and the runtime core at module level: ``run`` imports the command's implementation, because
that may need an extra this install lacks (torch for ``export``, nncf for ``quantize``...), so that a
runtime-only install still lists every command and names the extra a command needs.
"""
