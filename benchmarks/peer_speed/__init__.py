"""recurrent-mnist against PyTorch, side by side: the code behind `benchmarks/vs_pytorch.py`.

`cli` reads the command line; `orchestrate` plans the runs, runs them in fresh
worker processes (`launch` starts one, `workers` is what runs inside it) and
records them; `flops` counts a training step's FLOPs and times its matrix
products alone (the products floor); `summary` and `report` turn the raw runs
into the tables. docs/speed.md ("Methods") says how it measures.
"""
