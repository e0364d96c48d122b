"""The run-folder core that every command writing results builds on (`bench`, `tune`).

- `atomic`: atomic file writes (temporary file beside the target, then `os.replace`).
- `process`: child processes that die with their parent, and the isolated worker
  protocol (a JSON spec on stdin, JSON events on stdout).
- `folder`: `RunFolder`, the folder of one run: layout, write probe, discard,
  the identity check, locks, run names and OS-error sentences.
- `records`: what a run keeps per variant: its record file.

`atomic` and `process` import the standard library only, so that a process that
must not load TensorFlow (a PyTorch-only benchmark worker, with
`RECURRENT_MNIST_DEFER_KERAS=1`) can use them. This file imports nothing, so
that importing one of them costs no more than it.
"""
