"""The `irralctl` command line: thin wrappers that parse options, call one library function,
and render the result. Only this package imports typer."""
