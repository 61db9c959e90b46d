"""Evaluation: metrics, semantic and COCO scoring, galleries. Training and prediction both import it."""
