"""trtaoti: ship PyTorch models compiled with Torch-TensorRT + AOTInductor to Kubernetes."""

__version__ = "0.1.0"
