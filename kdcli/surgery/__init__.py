"""Building a student from a teacher's weights: per-family tensor layouts (`architectures`), which
layers/heads/channels to keep (`selection`, `importance`, `calibration`) and the streaming copy
(`slicing`).
"""
