"""The API's shapes for runs, blocks, attempts and results: inputs.py (what it reads) and outputs.py
(what it answers)."""
