"""Executes a notebook top to bottom with nbclient and writes the executed copy.

Usage: python run_notebook.py NOTEBOOK OUTPUT [TIMEOUT_SECONDS]
Exits non-zero (with the failing cell's error) if any cell raises.
"""

import sys

import nbclient
import nbformat

source, output = sys.argv[1], sys.argv[2]
timeout = int(sys.argv[3]) if len(sys.argv) > 3 else 600
book = nbformat.read(source, as_version=4)
client = nbclient.NotebookClient(book, timeout=timeout, kernel_name="python3")
try:
    client.execute()
finally:
    nbformat.write(book, output)
