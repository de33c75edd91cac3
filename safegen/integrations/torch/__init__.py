"""PyTorch integration: ``torch.utils.data`` (``data``). Imported only once the program
imported torch."""
