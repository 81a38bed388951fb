# syntax=docker/dockerfile:1
# The model repository for the stock Triton image (nvcr.io/nvidia/tritonserver:24.10-py3 = Triton 2.51, whose
# python is 3.10). It is not a server: the argus-triton pod's init container copies /models and /pylib into an
# emptyDir that Triton reads (deploy/k8s/base/triton.yaml). Build from the repository root:
#   docker build -f deploy/docker/triton-models.Dockerfile -t registry.example.com/argus/triton-models:0.1.0 .
# /models: triton_models/ as committed (config.pbtxt = onnxruntime on GPU for prod; configs/cpu.pbtxt = python
#          backend, selected in dev with --model-config-name=cpu).
# /pylib:  ONNX Runtime for the python-backend CPU models (PYTHONPATH=/repo/pylib in dev), built for Triton's
#          Python 3.10; numpy<2 as in the project's own CPU Triton (src/argus/devservers/triton.py).

FROM python:3.10-slim AS pylib
RUN pip install --no-cache-dir --target /pylib "onnxruntime>=1.18,<2" "numpy<2"

FROM busybox:1.36
COPY --from=pylib /pylib /pylib
COPY triton_models /models
USER 1000:1000
