"""The response-code catalogue, and the docs rendered from it."""

from __future__ import annotations

from article6 import docs
from article6.codes import CATALOGUE, Code, Family, check_catalogue
from article6.status import grpc_status_code


def test_the_catalogue_describes_every_code_once_in_its_family() -> None:
    check_catalogue()
    assert len({code.value for code in Code}) == len(Code)
    assert {code.family for code in Code} == set(Family)


def test_every_authentication_and_message_refusal_travels_as_a_grpc_status() -> None:
    for code in Code:
        if code.family is Family.MESSAGE:
            assert CATALOGUE[code].grpc_status is not None, code
        grpc_status_code(code)  # every named status exists in grpc


def test_the_protocol_doc_lists_every_code() -> None:
    text = docs.PROTOCOL.read_text()
    for code in Code:
        assert f"| {code.value} | `{code.name}` |" in text


def test_the_generated_docs_are_current() -> None:
    assert docs.stale_files() == [], "run `make docs` and commit the result"
