"""MRI physics as batched torch functions."""
