"""The subcommands of ``opencall`` (the parser and dispatch live in :mod:`opencall.cli`)."""
