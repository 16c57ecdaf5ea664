"""ETag, If-None-Match (304) and If-Match (412, no lost updates)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from helpers import book, create

from api import errors as e

pytestmark = pytest.mark.asyncio

PRECONDITION_FAILED = {"detail": e.PRECONDITION_FAILED}


async def _tag(client: httpx.AsyncClient, book_id: int) -> str:
    response = await client.get(f"/books/{book_id}/")
    assert response.status_code == 200
    return response.headers["etag"]


async def test_etag_is_strong_and_changes_on_every_change(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any]
) -> None:
    created = await client.post("/books/", json=book_data, headers=auth)
    book_id = created.json()["id"]
    tags = [created.headers["etag"]]
    assert tags[0] == await _tag(client, book_id)
    assert not tags[0].startswith("W/") and tags[0].startswith('"') and tags[0].endswith('"')

    for method, body in [
        ("PATCH", {"title": "Dune Messiah"}),
        ("PATCH", {"price": "13.00"}),
        ("PUT", {**book_data, "title": "Children of Dune"}),
        ("PUT", {**book_data, "title": "Children of Dune"}),  # same values: still a write
        ("PATCH", {"published_date": "1976-04-01"}),
    ]:
        response = await client.request(method, f"/books/{book_id}/", json=body, headers=auth)
        assert response.status_code == 200
        tag = response.headers["etag"]
        assert tag not in tags, (method, body)
        assert tag == await _tag(client, book_id)
        tags.append(tag)


async def test_etag_is_stable_without_changes(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any]
) -> None:
    created = await create(client, auth, book_data)
    tag = await _tag(client, created["id"])
    assert await _tag(client, created["id"]) == tag
    await create(client, auth, book(2))  # another book's change is not this one's
    await client.patch(f"/books/{created['id'] + 1}/", json={"title": "x"}, headers=auth)
    assert await _tag(client, created["id"]) == tag
    empty = await client.patch(f"/books/{created['id']}/", json={}, headers=auth)
    assert empty.headers["etag"] == tag


async def test_etags_differ_between_books_and_ids_are_not_reused(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    first = await client.post("/books/", json=book(1), headers=auth)
    second = await client.post("/books/", json=book(1), headers=auth)
    assert first.headers["etag"] != second.headers["etag"]
    await client.delete(f"/books/{second.json()['id']}/", headers=auth)
    third = await client.post("/books/", json=book(1), headers=auth)
    assert third.json()["id"] > second.json()["id"]
    assert third.headers["etag"] != second.headers["etag"]


async def test_if_none_match_current_is_304_without_body(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any]
) -> None:
    created = await create(client, auth, book_data)
    tag = await _tag(client, created["id"])
    for header in (
        "{tag}",
        "W/{tag}",
        '"zzz", {tag}',
        '{tag}, "zzz"',
        "*",
        " {tag} ",
        'W/"x",W/{tag}',
    ):
        for method in ("GET", "HEAD"):
            response = await client.request(
                method,
                f"/books/{created['id']}/",
                headers={"If-None-Match": header.format(tag=tag)},
            )
            assert response.status_code == 304, (method, header)
            assert response.content == b""
            assert response.headers["etag"] == tag
            assert response.headers.get("x-request-id")


async def test_if_none_match_stale_is_200(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any]
) -> None:
    created = await create(client, auth, book_data)
    other = await create(client, auth, book(2))
    other_tag = await _tag(client, other["id"])
    for header in ('"1-999"', '"nope"', 'W/"1-999"', "", other_tag):
        response = await client.get(f"/books/{created['id']}/", headers={"If-None-Match": header})
        assert response.status_code == 200, header
        assert response.json() == created


async def test_if_none_match_after_a_change_is_200(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any]
) -> None:
    created = await create(client, auth, book_data)
    old = await _tag(client, created["id"])
    await client.patch(f"/books/{created['id']}/", json={"title": "New"}, headers=auth)
    response = await client.get(f"/books/{created['id']}/", headers={"If-None-Match": old})
    assert response.status_code == 200
    assert response.json()["title"] == "New"


# If-Match


def _write(method: str, book_data: dict[str, Any]) -> dict[str, Any] | None:
    return {
        "PUT": {**book_data, "title": "Changed"},
        "PATCH": {"title": "Changed"},
        "DELETE": None,
    }[method]


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
async def test_if_match_current_tag_writes(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any], method: str
) -> None:
    created = await create(client, auth, book_data)
    tag = await _tag(client, created["id"])
    for form in ("{tag}", '"zzz", {tag}', "*", ' W/"x" , {tag} '):
        if method == "DELETE" and form != "{tag}":
            continue
        header = form.format(tag=tag)
        response = await client.request(
            method,
            f"/books/{created['id']}/",
            json=_write(method, book_data),
            headers={**auth, "If-Match": header},
        )
        assert response.status_code in (200, 204), (header, response.text)
        if method != "DELETE":
            tag = response.headers["etag"]


STALE_TAGS = [
    "old",
    "W/{tag}",
    '"nope"',
    '"{id}-999"',
    '"{id}-0{version}"',
    '"{id}-+{version}"',
    '"{other}-{version}"',
    '"0{id}-{version}"',
    "{tag_unquoted}",
    '""',
    '"-"',
]


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
async def test_if_match_stale_is_412_and_changes_nothing(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any], method: str
) -> None:
    other = await create(client, auth, book(7))
    created = await create(client, auth, book_data)
    book_id = created["id"]
    old = await _tag(client, book_id)
    await client.patch(f"/books/{book_id}/", json={"price": "1.00"}, headers=auth)
    current = await client.get(f"/books/{book_id}/")
    tag = current.headers["etag"]
    version = tag.strip('"').rpartition("-")[2]
    for stale in STALE_TAGS:
        header = (
            old
            if stale == "old"
            else stale.format(
                tag=tag, id=book_id, version=version, other=other["id"], tag_unquoted=tag.strip('"')
            )
        )
        assert header != tag
        response = await client.request(
            method,
            f"/books/{book_id}/",
            json=_write(method, book_data),
            headers={**auth, "If-Match": header},
        )
        assert response.status_code == 412, (header, response.text)
        assert response.json() == PRECONDITION_FAILED
        assert response.headers.get("x-request-id")
        after = await client.get(f"/books/{book_id}/")
        assert after.json() == current.json(), header
        assert after.headers["etag"] == tag


async def test_if_match_on_unknown_book(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any]
) -> None:
    for method in ("PUT", "PATCH", "DELETE"):
        response = await client.request(
            method,
            "/books/999/",
            json=_write(method, book_data),
            headers={**auth, "If-Match": '"999-1"'},
        )
        # No book, so no version for the tag to be stale against: the unknown id's 404.
        assert (response.status_code, response.json()) == (404, {"detail": "Not found."}), method


async def test_if_match_empty_patch_still_checks(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any]
) -> None:
    created = await create(client, auth, book_data)
    response = await client.patch(
        f"/books/{created['id']}/", json={}, headers={**auth, "If-Match": '"x"'}
    )
    assert response.status_code == 412


async def test_validation_error_wins_over_a_stale_tag_and_writes_nothing(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any]
) -> None:
    created = await create(client, auth, book_data)
    response = await client.patch(
        f"/books/{created['id']}/", json={"price": -1}, headers={**auth, "If-Match": '"x"'}
    )
    assert response.status_code == 400, response.text
    assert list(response.json()) == ["price"]
    assert (await client.get(f"/books/{created['id']}/")).json() == created


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
async def test_concurrent_writes_with_the_same_tag_exactly_one_wins(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any], method: str
) -> None:
    created = await create(client, auth, book_data)
    book_id = created["id"]
    tag = await _tag(client, book_id)

    async def write(n: int) -> httpx.Response:
        title = {"title": f"Writer {n}"}
        body = title if method == "PATCH" else {**book_data, **title}
        return await client.request(
            method, f"/books/{book_id}/", json=body, headers={**auth, "If-Match": tag}
        )

    responses = await asyncio.gather(*(write(n) for n in range(20)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [412] * 19
    (winner,) = [r for r in responses if r.status_code == 200]
    for r in responses:
        if r.status_code == 412:
            assert r.json() == PRECONDITION_FAILED
    final = await client.get(f"/books/{book_id}/")
    assert final.json() == winner.json()
    assert final.headers["etag"] == winner.headers["etag"] != tag


async def test_concurrent_delete_and_patches_with_the_same_tag(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any]
) -> None:
    created = await create(client, auth, book_data)
    book_id = created["id"]
    tag = await _tag(client, book_id)
    headers = {**auth, "If-Match": tag}
    requests = [client.delete(f"/books/{book_id}/", headers=headers)] + [
        client.patch(f"/books/{book_id}/", json={"title": f"P{n}"}, headers=headers)
        for n in range(9)
    ]
    responses = await asyncio.gather(*requests)
    winners = [r for r in responses if r.status_code in (200, 204)]
    assert len(winners) == 1
    assert all(r.status_code in (404, 412) for r in responses if r not in winners)
    final = await client.get(f"/books/{book_id}/")
    if winners[0].status_code == 204:
        assert final.status_code == 404
    else:
        assert final.json() == winners[0].json()


async def test_unconditional_concurrent_patches_all_apply(
    client: httpx.AsyncClient, auth: dict[str, str], book_data: dict[str, Any]
) -> None:
    created = await create(client, auth, book_data)
    tag = await _tag(client, created["id"])
    responses = await asyncio.gather(
        *(
            client.patch(f"/books/{created['id']}/", json={"title": f"T{n}"}, headers=auth)
            for n in range(10)
        )
    )
    assert all(r.status_code == 200 for r in responses)
    tags = {r.headers["etag"] for r in responses}
    assert len(tags) == 10 and tag not in tags
