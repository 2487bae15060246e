"""`tinct` subcommands of the runtime. Each module: ``register(subparsers)``, stdlib-only imports at module level."""
