"""Dataset loaders, one module per dataset, chosen by name (see :data:`LOADERS`)."""
