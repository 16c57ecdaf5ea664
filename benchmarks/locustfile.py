"""A realistic user model of the Books API for locust.

Readers (9 in 10 users) browse list pages and follow ``next`` links, open books, search,
and filter by author or sort by price, with think time between actions. Editors (1 in
10) also change prices with ``If-Match`` and add books, authenticated with a token.

Against a server seeded with ``python main.py seed --count N``:

    BENCH_ROWS=N BENCH_TOKEN=<key from python main.py token create NAME> \\
    locust -f benchmarks/locustfile.py --headless -u 50 -r 10 -t 60s \\
        --host http://127.0.0.1:8000 --csv benchmarks/results/tmp/locust

(``python -m benchmarks --locust 50`` does the same against the server it starts.)
"""

from __future__ import annotations

import os
import random
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from locust import FastHttpUser, between, task

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from db.seed import SEARCH_TERMS, book_for  # noqa: E402  (the seeded population)

ROWS = int(os.environ.get("BENCH_ROWS", "10000"))
TOKEN = os.environ.get("BENCH_TOKEN", "")
WRITE_HEADERS = {"Authorization": f"Token {TOKEN}", "Content-Type": "application/json"}


def _book() -> dict[str, str]:
    n = random.randrange(1_000_000)
    return {
        "title": f"Locust Book {n}",
        "author": f"Locust Author {n % 97}",
        "published_date": f"{random.randrange(1950, 2025)}-{random.randrange(1, 13):02d}-"
        f"{random.randrange(1, 29):02d}",
        "price": f"{random.randrange(1, 999)}.{random.randrange(100):02d}",
    }


class Reader(FastHttpUser):
    weight = 9
    wait_time = between(0.5, 2.0)

    def _follow(self, path: str, name: str, pages: int) -> None:
        response = self.client.get(path, name=name)
        for _ in range(pages):
            if response.status_code != 200:
                return
            next_url = response.json().get("next")
            if not next_url:
                return
            parts = urlsplit(next_url)
            response = self.client.get(f"{parts.path}?{parts.query}", name=f"{name} next")

    @task(6)
    def open_book(self) -> None:
        self.client.get(f"/books/{random.randint(1, ROWS)}/", name="/books/{id}/")

    @task(4)
    def browse(self) -> None:
        self._follow("/books/", "/books/", random.randint(0, 3))

    @task(2)
    def search(self) -> None:
        term = random.choice(SEARCH_TERMS)
        self._follow(f"/books/?search={term}", "/books/?search", random.randint(0, 1))

    @task(1)
    def by_author(self) -> None:
        author = book_for(random.randint(1, ROWS))[1]
        self.client.get("/books/", params={"author": author}, name="/books/?author")

    @task(1)
    def cheapest(self) -> None:
        self.client.get("/books/?ordering=price", name="/books/?ordering=price")


class Editor(Reader):
    weight = 1

    @task(3)
    def reprice(self) -> None:
        if not TOKEN:
            return
        book_id = random.randint(1, ROWS)
        read = self.client.get(f"/books/{book_id}/", name="/books/{id}/")
        tag = read.headers.get("ETag")
        if read.status_code != 200 or not tag:
            return
        body: dict[str, Any] = {"price": f"{random.randrange(1, 999)}.{random.randrange(100):02d}"}
        with self.client.patch(
            f"/books/{book_id}/",
            json=body,
            name="PATCH /books/{id}/",
            headers={**WRITE_HEADERS, "If-Match": tag},
            catch_response=True,
        ) as response:
            if response.status_code == 412:  # another editor won the race: a fair answer
                response.success()

    @task(2)
    def add_book(self) -> None:
        if TOKEN:
            self.client.post("/books/", json=_book(), headers=WRITE_HEADERS, name="POST /books/")
