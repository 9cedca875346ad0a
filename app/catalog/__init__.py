"""The catalog service: products and their stock."""
