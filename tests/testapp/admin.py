from django.contrib import admin

from boogie_tasks.admin import TaskRecordInline
from tests.testapp.models import Book, Tag


@admin.register(Book)
class BookAdmin(admin.ModelAdmin):
    inlines = [TaskRecordInline]


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    inlines = [TaskRecordInline]
