"""Packaging of boogie_tasks."""

from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="boogie_tasks",
    version="0.1.0",
    description="Tracked background tasks for Django: every run a row, on Celery.",
    long_description=Path(__file__).with_name("README.rst").read_text(encoding="utf-8"),
    long_description_content_type="text/x-rst",
    license="MIT",
    packages=find_packages(include=["boogie_tasks", "boogie_tasks.*"]),
    include_package_data=True,
    package_data={
        "boogie_tasks": ["py.typed", "static/boogie_tasks/*", "templates/boogie_tasks/*"]
    },
    python_requires=">=3.10",
    install_requires=[
        "Django>=5.2,<6.2",
        "celery>=5.3",
        "django-celery-beat>=2.7",
    ],
    extras_require={
        "redis": ["celery[redis]>=5.3"],
        "postgres": ["psycopg[binary]>=3.1"],
        "test": [
            "pytest>=8",
            "pytest-django>=4.8",
            "ruff>=0.5",
            "mypy>=1.11",
            "django-stubs>=5.2",
            "celery-types>=0.22",
            "import-linter>=2.1",
            "redis>=5",
            "psycopg[binary]>=3.1",
            "playwright>=1.40",
        ],
        "docs": ["sphinx>=7", "sphinx-rtd-theme>=2"],
        "bench": ["django-celery-results>=2.5", "redis>=5", "psycopg[binary]>=3.1"],
    },
    classifiers=[
        "Framework :: Django",
        "Framework :: Django :: 5.2",
        "Framework :: Django :: 6.0",
        "Framework :: Celery",
        "Programming Language :: Python :: 3",
        "Typing :: Typed",
    ],
)
