"""Prediction: one Predictor for every entry point."""
