"""vispod metrics service."""
