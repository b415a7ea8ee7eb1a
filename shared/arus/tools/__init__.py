"""Developer and operator tools: the CLI, the local dev server, bundles."""
