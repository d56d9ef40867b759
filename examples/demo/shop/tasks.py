"""The shop's tasks: each run is a ``TaskRecord`` tied to its product."""

import time

from boogie_tasks import TaskFailed, progress, task

# Seconds of pretend work per unit, so that progress is visible.
STEP = 0.2


@task
def summarize_reviews(product):
    """Average the product's reviews, one at a time."""
    stars = []
    # The total comes from the queryset; each item counts one unit of progress.
    for review in progress(product.reviews.all(), message="reading reviews"):
        time.sleep(STEP)
        stars.append(review.stars)
    average = round(sum(stars) / len(stars), 2) if stars else None
    return {"reviews": len(stars), "average": average}


@task
def reprice(product, percent=10, shops=8):
    """Compare prices with other shops, then change the product's price by ``percent``."""
    old = product.price_cents
    for shop in range(shops):
        progress.set(shop, shops, message=f"asking shop {shop + 1} of {shops}")
        time.sleep(STEP)
        if product.discontinued and shop == shops // 2:
            # A failure on purpose: the record is FAILED with this message, no traceback.
            raise TaskFailed(f"{product.name} is discontinued: price left at {old} cents")
    product.price_cents = round(old * (100 + percent) / 100)
    product.save(update_fields=["price_cents"])
    return {"old": old, "new": product.price_cents}


@task
def price_tag(product, currency="EUR"):
    """Render the product's price tag."""
    return f"{product.name}: {product.price_cents / 100:.2f} {currency}"
