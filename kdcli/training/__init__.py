"""The one training loop (`loop`) and what finetune and distill build around it: the objective and
losses, the teacher-output cache, checkpoints, and the shared job steps (`job`).
"""
