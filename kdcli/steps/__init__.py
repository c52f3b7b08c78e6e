"""The five public steps, each one module with its config, its function and its result:
`finetune`, `shrink`, `distill`, `evaluate`, `export`. `kdcli/__init__.py` re-exports them; the CLI
calls them. Nothing below this layer imports it.
"""
