"""Fixtures for the real path to a gateway (see harness.py for what each one runs).

    gateway_ca       session   TestCA: CA + 127.0.0.1 server certificate (PEM files)
    jwks_server      function  JwksServer on https://127.0.0.1:PORT/jwks.json, empty set
    apache_gateway   function  ApacheGateway trusting the test CA, JWKS URI = jwks_server
                               (issuer ISSUER and audience AUDIENCE required), started
    make_apache      function  factory for other Apache set-ups (stopped after the test)
    jose_consumer    function  JoseConsumer (node jose) against jwks_server, started
    world_readable_dir function  a 0755 folder Apache's children can read, removed after

Every gateway test module sets `pytestmark = pytest.mark.gateway`; a missing apache2, module
or node turns into a skip that names what is missing and how to install it.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.harness import (
    ApacheGateway,
    GatewayUnavailable,
    JoseConsumer,
    JwksServer,
    TestCA,
    find_apache,
    install_jose,
    private_dir,
)

ISSUER = "https://gateway-lab.example/api"
AUDIENCE = "orders"


@pytest.fixture(scope="session")
def gateway_ca() -> Iterator[TestCA]:
    directory = private_dir("gateway-ca-")
    try:
        yield TestCA.create(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def world_readable_dir() -> Iterator[Path]:
    directory = private_dir("gateway-files-")
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def jwks_server(gateway_ca: TestCA) -> Iterator[JwksServer]:
    server = JwksServer(gateway_ca).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def apache_available() -> None:
    try:
        find_apache()
    except GatewayUnavailable as e:
        pytest.skip(str(e))


@pytest.fixture
def make_apache(apache_available: None, gateway_ca: TestCA,
                jwks_server: JwksServer) -> Iterator[Callable[..., ApacheGateway]]:
    """Factory: `make_apache(start=True, **ApacheGateway options)`; defaults trust the test CA
    and point at `jwks_server`. Every gateway made is stopped after the test."""
    made: list[tuple[ApacheGateway, Path]] = []

    def factory(*, start: bool = True, **options: Any) -> ApacheGateway:
        options.setdefault("jwks_uri", jwks_server.url)
        options.setdefault("ca_file", gateway_ca.ca_file)
        directory = private_dir("gateway-apache-")
        gateway = ApacheGateway(directory, **options)
        made.append((gateway, directory))
        if start:
            gateway.start()
        return gateway

    yield factory
    for gateway, directory in made:
        gateway.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def apache_gateway(make_apache: Callable[..., ApacheGateway]) -> ApacheGateway:
    return make_apache(issuer=ISSUER, audience=AUDIENCE)


@pytest.fixture(scope="session")
def jose_installed() -> Path:
    try:
        return install_jose()
    except GatewayUnavailable as e:
        pytest.skip(str(e))


@pytest.fixture
def jose_consumer(jose_installed: Path, gateway_ca: TestCA,
                  jwks_server: JwksServer) -> Iterator[JoseConsumer]:
    consumer = JoseConsumer(jwks_server.url, gateway_ca.ca_file).start()
    try:
        yield consumer
    finally:
        consumer.stop()
