"""vispod judge service."""
