"""The compile Job's program: one batch profile -> one validated, stored `.pt2`.

    errors.py     failures split by whether a retry helps (exit codes 2 and 1)
    dtypes.py     element types: spec names, torch dtypes, KServe V2 names
    source.py     load the model (Python factory, or a torch.export.save file in storage)
    plan.py       what to compile: inputs, batch range, backend, precision, device
    samples.py    seeded inputs at any batch size (integer inputs stay in a valid range)
    export.py     torch.export with one shared dynamic batch dimension
    tensorrt.py   Torch-TensorRT engines + AOTInductor into one package
    inductor.py   plain AOTInductor package (CPU or CUDA)
    metadata.py   the signature stamped into the package, and its manifest (trtaoti/artifact)
    validate.py   load the package in a separate process, compare, time, measure memory
    validate_worker.py  that process (reports the step it crashed in)
    pipeline.py   the steps in order, with the artifact-cache short cut
    progress.py   progress lines for the Job log, the JSON termination message
    command.py    `trtaoti compile`: arguments, exit codes, the outcome it reports

Importing this package must not import torch: the validation worker and the CLI
dispatcher import submodules selectively.
"""
