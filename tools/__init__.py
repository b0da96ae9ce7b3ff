"""Developer tools: benchmarks (:mod:`tools.bench`) and the build scripts of shipped assets (see ``tools/README.md``).

Outside the served packages: they may import ``inference``, ``training`` and ``export`` and need the training
requirements (the serving-side benchmark, :mod:`tools.bench.inference`, needs only the serving ones); the served
packages never import them (tests/test_dependencies.py).
"""
