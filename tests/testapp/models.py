"""Models with the three kinds of primary key a task's object may have."""

import uuid

from django.db import models


class Book(models.Model):
    """An integer primary key."""

    title = models.CharField(max_length=100)
    pages = models.PositiveIntegerField(default=3)

    def __str__(self) -> str:
        return self.title


class Document(models.Model):
    """A UUID primary key."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    name = models.CharField(max_length=100)


class Tag(models.Model):
    """A string primary key."""

    slug = models.CharField(primary_key=True, max_length=50)


class Novel(Book):
    """Multi-table inheritance: its row spans two tables."""

    genre = models.CharField(max_length=50, blank=True)
