"""Channel adapters: one package per channel, each of the same shape."""
