"""safegen's PyTorch integration: ``torch.utils.data`` datasets, loaders, workers and samplers."""
