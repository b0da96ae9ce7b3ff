"""Benchmarks: ratios taken in one run and printed (never timed tests), one module per package measured.

  python -m tools.bench.inference face|runtime|motion|recordings   the serving path (needs only the serving install)
  python -m tools.bench.export --model PKG --checkpoint CKPT         PyTorch eager against the package's engines
  python -m tools.bench.training                                     the training engine's step vs the reference code's
  python -m tools.bench.training ststnet-loso                        STSTNet's LOSO: fold by fold vs every fold at once
  python -m tools.bench.folds --model PKG --data SET                 a fold package: evaluate's time, one interval's

Each takes --help. ``python -m tools.bench`` prints this list.
"""
