"""Datasets as kdcli sees them: `--data` readers (`sources`), one split of examples (`splits`), and
tokenized, length-grouped batches (`batching`).
"""
