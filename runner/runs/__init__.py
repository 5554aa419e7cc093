"""The runs layer: the library entry points the CLI calls."""
