"""The shop's models: products and their reviews."""

from django.db import models


class Product(models.Model):
    """Something the shop sells."""

    name = models.CharField(max_length=100)
    price_cents = models.PositiveIntegerField()
    discontinued = models.BooleanField(default=False)

    def __str__(self) -> str:
        return self.name


class Review(models.Model):
    """A customer's rating of a product, from 1 to 5 stars."""

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="reviews")
    stars = models.PositiveSmallIntegerField()

    def __str__(self) -> str:
        return f"{self.stars} stars for {self.product}"
