"""The `ceremony` command handlers, one module per concern. Each handler takes the parsed
arguments, asks the services, prints, and returns an exit code; errors propagate to
`console.cli.main`, the one place they become an error line and an exit code."""
