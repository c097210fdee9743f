"""WKD file names and URLs are GnuPG's: checked against gpg-wks-client itself and the draft's
and the test vectors of docs/facts.md §1, including mixed case and non-ASCII local parts."""

import hashlib
import subprocess

import pytest

from keys import wkd

WKS_CLIENT = "/usr/lib/gnupg/gpg-wks-client"
ADDRESSES = [
    "Joe.Doe@Example.ORG",
    "test@example.com",
    "jürgen@example.org",
    "Jürgen@example.org",
    "JÜRGEN@example.org",
    "ÄÖÜ.äöü@example.org",
    "a+b!x@Family.example",
    "o'neil@x.example",
    "alice@family.example",
]
VECTORS = {  # docs/facts.md §1, from gpg-wks-client 2.2.40
    "Joe.Doe@Example.ORG": "iy9q119eutrkn8s1mk4r39qejnbu3n5q",
    "test@example.com": "iffe93qcsgp4c8ncbb378rxjo6cn9q6u",
    "jürgen@example.org": "xotup5kjnwdgxj1qa4a6s1j1hx3q5196",
    "Jürgen@example.org": "xotup5kjnwdgxj1qa4a6s1j1hx3q5196",
    "JÜRGEN@example.org": "bbci4p578ntucorruusqkfa8todycfkg",
}


def wks_client(option: str, address: str) -> str:
    done = subprocess.run([WKS_CLIENT, option, address], capture_output=True, check=True)
    return done.stdout.decode().strip()


@pytest.mark.parametrize("address", ADDRESSES)
def test_it_names_the_file_as_gpg_wks_client_does(address):
    expected = wks_client("--print-wkd-hash", address).split()[0]
    assert wkd.address_hash(address) == expected


@pytest.mark.parametrize(("address", "expected"), VECTORS.items())
def test_it_matches_the_known_test_vectors(address, expected):
    assert wkd.address_hash(address) == expected


def test_it_lowercases_only_ascii_letters():
    assert wkd.local_hash("JÜRGEN") == wkd.local_hash("jÜrgen") != wkd.local_hash("jürgen")


def test_it_encodes_z_base_32_of_sha1_in_32_characters():
    digest = hashlib.sha1(b"joe.doe").digest()  # noqa: S324
    assert wkd.zbase32(digest) == "iy9q119eutrkn8s1mk4r39qejnbu3n5q"
    assert wkd.zbase32(b"\x00" * 20) == "y" * 32
    assert wkd.zbase32(b"\xff" * 20) == "9" * 32


@pytest.mark.parametrize("address", ["Joe.Doe@Example.ORG", "alice@family.example"])
def test_it_gives_the_advanced_url_gpg_asks(address):
    assert wkd.urls(address)[0] == wks_client("--print-wkd-url", address)


def test_it_gives_the_direct_url_and_escapes_the_local_part_as_gpg_sends_it():
    advanced, direct = wkd.urls("jürgen@Example.org")
    assert advanced == (
        "https://openpgpkey.example.org/.well-known/openpgpkey/example.org/hu/"
        "xotup5kjnwdgxj1qa4a6s1j1hx3q5196?l=j%C3%BCrgen"
    )
    assert direct == (
        "https://example.org/.well-known/openpgpkey/hu/xotup5kjnwdgxj1qa4a6s1j1hx3q5196"
        "?l=j%C3%BCrgen"
    )
    assert wkd.urls("a+b@x.example")[1].endswith("?l=a%2Bb")
