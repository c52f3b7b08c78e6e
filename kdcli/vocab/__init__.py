"""Vocabulary trimming: the tokenizer mechanics (`tokenizer_trim`) and trimming as one step of
`kdcli shrink` (`shrink_step`).
"""
