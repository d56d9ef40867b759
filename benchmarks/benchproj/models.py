"""The object every peer's task fetches by primary key."""

from django.db import models


class Item(models.Model):
    """A small row, fetched by pk by each task."""

    name = models.CharField(max_length=100)
    value = models.IntegerField(default=0)

    def __str__(self) -> str:
        return self.name
