"""Per-language scoring: pure metrics (`metrics`), the report of `kdcli eval` (`report`) and the
files it writes (`report_files`).
"""
