"""The sequence autoencoder task: `charrnn autoencode` (train, interpolate, reconstruct, eval)."""
