"""Deployment: export and verification, int8 quantization, inference engines, split inference, predict, bench."""
