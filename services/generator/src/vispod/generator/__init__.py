"""vispod generator service."""
