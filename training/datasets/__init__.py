"""Dataset loaders, one module per dataset, chosen by name (see :mod:`training.datasets.registry`)."""
