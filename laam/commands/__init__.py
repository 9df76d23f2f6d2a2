"""CLI commands of the later pipeline stages; each module registers on laam.cli.app."""
