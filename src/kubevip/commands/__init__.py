"""Subcommands of the `kubevip` command line."""
