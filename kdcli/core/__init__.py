"""What every layer shares and that knows nothing of models: errors, progress events, result
objects' JSON, human-readable numbers, validators of option values. Imports nothing else of kdcli.
"""
