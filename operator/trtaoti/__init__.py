"""trtaoti: ship PyTorch models compiled with Torch-TensorRT + AOTInductor to Kubernetes."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("trtaoti")  # from VERSION, through pyproject.toml
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
