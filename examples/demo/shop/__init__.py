"""A tiny shop: products, their reviews, and tasks that work on them."""
