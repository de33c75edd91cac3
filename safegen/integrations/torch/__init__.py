"""PyTorch integration: ``torch.utils.data`` (``data``). Imported only once the program
imported torch."""

"""safegen's PyTorch integration: ``torch.utils.data`` datasets, loaders, workers and samplers."""
