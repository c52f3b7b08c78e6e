"""What kdcli reads and writes on disk: model directories and Hub ids (`model_dirs`), weight files
tensor by tensor (`tensor_stream`), atomic output directories (`outputs`), `kdcli.json`
(`provenance`) and the model card. Imports only `kdcli.core`.
"""
