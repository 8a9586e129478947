"""One module per subcommand: plain functions taking paths and a config, returning a summary."""
