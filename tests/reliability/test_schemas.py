"""schemathesis against both services' OpenAPI schemas: no 5xx, answers match the schemas."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.e2e.processes import command_env, run_command, running
from tests.support import postgres
from tests.support.auth import HEADERS
from tests.support.servers import free_port

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def deployed() -> Iterator[dict[str, str]]:
    names = {s: postgres.unique_name(f"cc_schema_{s}") for s in ("ordering", "catalog")}
    urls = {service: postgres.create_database(name) for service, name in names.items()}
    ordering_port, catalog_port = free_port(), free_port()
    catalog = f"http://127.0.0.1:{catalog_port}"
    ordering = f"http://127.0.0.1:{ordering_port}"
    env = command_env(
        ORDERING_DATABASE_URL=urls["ordering"],
        CATALOG_DATABASE_URL=urls["catalog"],
        CATALOG_API_URL=catalog,
    )
    try:
        run_command("migrate", env=env)
        with (
            running(
                "api", "catalog", "--port", str(catalog_port), env=env, ready_url=f"{catalog}/docs"
            ),
            running(
                "api",
                "ordering",
                "--port",
                str(ordering_port),
                env=env,
                ready_url=f"{ordering}/docs",
            ),
        ):
            yield {"ordering": ordering, "catalog": catalog}
    finally:
        for name in names.values():
            postgres.drop_database(name)


# Examples per operation: 30 in `make test`, 200 in `make soak`.
EXAMPLES = [30, pytest.param(200, marks=pytest.mark.soak)]


def exercise(schema_url: str, examples: int) -> int:
    """Every operation, with ``examples`` generated valid and invalid inputs each; returns
    the number of operations."""
    schema = schemathesis.openapi.from_url(schema_url)
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def check(case: schemathesis.Case) -> None:
            if case.headers and "Idempotency-Key" in case.headers:
                # A key names one request: the generator repeats short keys with other
                # bodies, which the API rightly refuses (422; tested on its own).
                case.headers["Idempotency-Key"] = str(uuid.uuid4())
            if case.query and "after" in case.query and "before" in case.query:
                # "Not with after", as the parameter says: OpenAPI cannot state that two
                # query parameters exclude each other (the 422 is tested on its own).
                del case.query["before"]
            # Every scope: the routes' 401 and 403 have their own generated test.
            case.call_and_validate(headers=HEADERS)

        check()
    return operations


@pytest.mark.parametrize("examples", EXAMPLES)
@pytest.mark.parametrize("service", ["ordering", "catalog"])
def test_api_answers_match_its_schema_and_never_5xx(
    deployed: dict[str, str], service: str, examples: int
) -> None:
    assert exercise(f"{deployed[service]}/openapi.json", examples) >= 3
