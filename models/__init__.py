"""Model registry, model cards, the shipped demo detector, training and export (issue #5)."""
