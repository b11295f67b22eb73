"""`trtaoti run MODEL.yaml`: the operator's pipeline on one machine, no cluster.

backend.py   which backend/device this machine can compile for, and why
compile.py   every profile through the compiler pipeline, with a live progress display
serve.py     trtaoti-server processes: find the binary, pick ports, wait ready, stop
session.py   packages on local disk, one server per profile, then one inference or a wait
client.py    what to tell the user (curl, tritonclient) and the one-shot example inference
command.py   the command: compile -> serve -> wait for Ctrl-C (or infer once and exit)
"""
