"""Synthetic datasets in the real datasets' on-disk layouts (see ``python -m training.synth --help``)."""
