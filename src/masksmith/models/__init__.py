"""Models: builders, offline pretrained encoder weights and the model artifact."""
