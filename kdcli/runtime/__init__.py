"""Running a model on text: one `Predictor` for PyTorch models and kdcli's ONNX exports
(`predictor`), and the ONNX graph work of `kdcli export` (`onnx_graph`).
"""
