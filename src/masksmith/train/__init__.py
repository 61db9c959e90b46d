"""Training: Lightning modules, losses, metrics and callbacks."""
