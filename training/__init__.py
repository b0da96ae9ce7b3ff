"""Training: dataset loaders, the aligned dataset cache, LOSO experiments, N-step pre-training chains.

May import :mod:`inference` (the cache is built with the same face alignment that serves uploads);
nothing in :mod:`inference` or :mod:`demo` may import this package.
"""
