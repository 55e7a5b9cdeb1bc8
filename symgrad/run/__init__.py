"""run: what runs compiled kernels (above compile): :mod:`.check` (gradient checks by central
differences) and :mod:`.train` (optimizers, data, saving parameters)."""
