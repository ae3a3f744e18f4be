"""The OpenAPI description of /api/v1/ is served, well formed, and cannot drift
from the routes: every rule, method and status code the handlers can answer
with is in it, and nothing in it is missing from the app (500, 503
"unavailable" and 507 come from the app's own handlers)."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
from helpers import Deployment, make_settings

from intake.web import api
from intake.web.app import build_app
from intake.web.security import SECURITY_HEADERS

DOCUMENT = Path(api.__file__).with_name("openapi.json")
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
AUTOMATIC = {"HEAD", "OPTIONS"}  # Werkzeug adds these to every rule


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("openapi")
    deployment = Deployment(tmp / "keys").setup(recipients=2)
    return build_app(make_settings(tmp / "var", deployment), {"TESTING": True})


@pytest.fixture(scope="module")
def doc() -> dict:
    return json.loads(DOCUMENT.read_text(encoding="utf-8"))


def operations(doc: dict):
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def resolve(doc: dict, node: dict) -> dict:
    while "$ref" in node:
        assert node["$ref"].startswith("#/"), node["$ref"]
        target = doc
        for part in node["$ref"][2:].split("/"):
            target = target[part]
        node = target
    return node


def error_codes(doc: dict, response: dict) -> set[str]:
    """The `error` values a documented JSON error response lists."""
    schema = response["content"]["application/json"]["schema"]
    [base, narrowed] = schema["allOf"]
    assert resolve(doc, base) is doc["components"]["schemas"]["Error"]
    return set(narrowed["properties"]["error"]["enum"])


# -- served ----------------------------------------------------------------------------------


def test_the_document_is_served_as_json_with_the_security_headers(app, doc):
    response = app.test_client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_json() == doc
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, name


# -- well formed -----------------------------------------------------------------------------


def test_it_is_openapi_3_1_with_the_required_parts(doc):
    assert doc["openapi"].startswith("3.1.")
    assert doc["info"]["title"] and doc["info"]["version"]
    assert doc["paths"] and all(path.startswith("/api/v1/") for path in doc["paths"])
    for path, method, operation in operations(doc):
        assert operation["operationId"] and operation["summary"], (path, method)
        assert operation["responses"], (path, method)
        for status, response in operation["responses"].items():
            assert re.fullmatch(r"[1-5]\d\d", status), (path, method, status)
            assert resolve(doc, response)["description"], (path, method, status)
    ids = [operation["operationId"] for _, _, operation in operations(doc)]
    assert len(ids) == len(set(ids))


def test_every_reference_resolves(doc):
    def walk(node):
        if isinstance(node, dict):
            if "$ref" in node:
                resolve(doc, node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)


def test_path_parameters_match_the_templates_and_parameters_are_complete(doc):
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            parameters = [resolve(doc, p) for p in item.get("parameters", [])]
            parameters += [resolve(doc, p) for p in operation.get("parameters", [])]
            for parameter in parameters:
                assert parameter["in"] in ("path", "query", "header", "cookie"), parameter
                assert parameter["name"] and parameter["schema"], parameter
            in_path = {p["name"] for p in parameters if p["in"] == "path"}
            assert in_path == set(re.findall(r"{([^}]+)}", path)), (path, method)
            assert all(p["required"] for p in parameters if p["in"] == "path")


def test_every_error_response_is_the_json_error_shape(doc):
    error = doc["components"]["schemas"]["Error"]
    assert error["required"] == ["error", "message"]
    for path, method, operation in operations(doc):
        for status, response in operation["responses"].items():
            if status.startswith("4") or status == "503":
                assert error_codes(doc, resolve(doc, response)), (path, method, status)


# -- no drift: the app's routes --------------------------------------------------------------


def app_routes(app) -> dict[tuple[str, str], str]:
    """(OpenAPI path, method) -> endpoint for every rule under /api/v1/."""
    routes = {}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in rule.methods - AUTOMATIC:
            routes[(path, method.lower())] = rule.endpoint
    return routes


def test_every_api_route_is_described_and_nothing_else(app, doc):
    routes = app_routes(app)
    described = {(path, method): op["operationId"] for path, method, op in operations(doc)}
    assert set(described) == set(routes)
    for key, endpoint in routes.items():
        assert endpoint == f"api.{described[key]}", key  # operationId is the view's name


def test_state_changing_operations_need_the_csrf_header_and_the_session(doc):
    csrf_methods = _csrf_methods()
    for path, method, operation in operations(doc):
        headers = {
            resolve(doc, p)["name"]: resolve(doc, p)
            for p in operation.get("parameters", [])
            if resolve(doc, p)["in"] == "header"
        }
        needs = method.upper() in csrf_methods
        assert ("X-CSRFToken" in headers) == needs, (path, method)
        if needs:
            assert headers["X-CSRFToken"]["required"]
            assert operation["security"] == [{"session": []}], (path, method)


def test_the_limits_in_the_document_are_the_api_s(doc):
    upload = doc["components"]["schemas"]["Upload"]["properties"]
    assert upload["chunk_size"]["const"] == api.CHUNK_SIZE
    assert upload["max_chunk"]["const"] == api.MAX_CHUNK
    put = doc["paths"]["/api/v1/uploads/{upload_id}"]["put"]
    [length] = [p for p in put["parameters"] if p.get("name") == "Content-Length"]
    assert length["schema"]["maximum"] == api.MAX_CHUNK
    assert str(api.MAX_CHUNK) in put["description"]
    from intake.limits import MAX_AGE_HEADER

    finish = doc["paths"]["/api/v1/uploads/{upload_id}/finish"]["post"]
    assert str(MAX_AGE_HEADER) in finish["description"]


# -- no drift: every status code and error code the handlers can answer with ---------------
#
# api.py is read as source: for each view, the ApiError(status, code) it or any function of
# api.py it calls can raise, what it returns, what the before_request hook adds for its
# method, and what the blueprint's HTTPException handler answers when the view reads the body.

SOURCE = Path(api.__file__).read_text(encoding="utf-8")
TREE = ast.parse(SOURCE)
FUNCTIONS = {node.name: node for node in TREE.body if isinstance(node, ast.FunctionDef)}


def _literal(node: ast.AST, bindings: dict[str, object]) -> object:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name) and node.id in bindings:
        return bindings[node.id]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _literal(node.left, bindings), _literal(node.right, bindings)
        if isinstance(left, str) and isinstance(right, str):
            return left + right
    if isinstance(node, ast.JoinedStr):
        return None
    raise AssertionError(f"cannot read a status or code from {ast.unparse(node)!r}")


def _errors(name: str, bindings: dict[str, object], seen: frozenset = frozenset()) -> set:
    """(status, code) of every ApiError `name` (and what it calls in api.py) can make."""
    found: set[tuple[int, str]] = set()
    for node in ast.walk(FUNCTIONS[name]):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
            continue
        if node.func.id == "ApiError":
            status, code = (_literal(arg, bindings) for arg in node.args[:2])
            assert isinstance(status, int) and isinstance(code, str), ast.unparse(node)
            found.add((status, code))
        elif node.func.id in FUNCTIONS and node.func.id not in seen:
            callee = FUNCTIONS[node.func.id]
            params = [a.arg for a in callee.args.args]
            bound = {}
            for param, arg in zip(params, node.args, strict=False):
                if isinstance(arg, ast.Constant):
                    bound[param] = arg.value
            found |= _errors(node.func.id, bound, seen | {name})
    return found


def _reads_body(name: str, seen: frozenset = frozenset()) -> bool:
    for node in ast.walk(FUNCTIONS[name]):
        if isinstance(node, ast.Attribute) and node.attr in (
            "get_json", "get_data", "data", "form", "files", "json", "stream"
        ) and isinstance(node.value, ast.Name) and node.value.id == "request":
            return True
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in FUNCTIONS and node.func.id not in seen
                and _reads_body(node.func.id, seen | {name})):
            return True
    return False


def _successes(name: str) -> set[int]:
    statuses = set()
    for node in ast.walk(FUNCTIONS[name]):
        if isinstance(node, ast.Return) and node.value is not None:
            if isinstance(node.value, ast.Tuple):
                statuses.add(_literal(node.value.elts[-1], {}))
            else:
                statuses.add(200)
    return statuses


def _csrf_methods() -> set[str]:
    """The methods `require_csrf` checks, read from its `request.method in (...)`."""
    [compare] = [n for n in ast.walk(FUNCTIONS["require_csrf"]) if isinstance(n, ast.Compare)]
    return {element.value for element in compare.comparators[0].elts}


def _http_error_codes() -> dict[int, str]:
    [names] = [n for n in ast.walk(FUNCTIONS["http_error"]) if isinstance(n, ast.Dict)]
    return {k.value: v.value for k, v in zip(names.keys, names.values, strict=True)}


def handler_answers(function: str, method: str) -> dict[int, set[str]]:
    """Status -> error codes (empty for a success) that one view can answer with."""
    answers: dict[int, set[str]] = {status: set() for status in _successes(function)}
    errors = _errors(function, {})
    if method.upper() in _csrf_methods():
        errors |= _errors("require_csrf", {})
    if _reads_body(function):
        # Werkzeug's body limit (MAX_CONTENT_LENGTH) and a body cut short (ClientDisconnected).
        errors |= {(413, _http_error_codes()[413]), (400, "bad_request")}
    for status, code in errors:
        answers.setdefault(status, set()).add(code)
    return answers


def test_the_source_reading_sees_what_the_tests_of_the_api_see():
    # A guard on the reader itself, with facts test_api.py checks over HTTP.
    assert (400, "csrf") in _errors("require_csrf", {})
    assert {(400, "bad_size"), (400, "bad_keyring_version"), (409, "keyring_changed"),
            (422, "impossible_size"), (503, "closed"), (503, "busy")} <= _errors("create_upload",
                                                                              {})
    assert {(400, "bad_size"), (409, "size_mismatch"), (422, "bad_ciphertext")} <= _errors(
        "finish", {})
    assert _successes("finish") == {200, 201}
    assert _reads_body("put_chunk") and _reads_body("create_upload") and _reads_body("finish")
    assert not _reads_body("upload_status")
    assert _csrf_methods() >= {"POST", "PUT"}


def test_every_status_and_error_code_the_handlers_answer_with_is_documented(app, doc):
    routes = app_routes(app)
    for (path, method), endpoint in routes.items():
        operation = doc["paths"][path][method]
        documented = {
            int(status): (
                error_codes(doc, resolve(doc, response))
                if "application/json" in resolve(doc, response)["content"]
                and "allOf" in resolve(doc, response)["content"]["application/json"]["schema"]
                else set()
            )
            for status, response in operation["responses"].items()
        }
        answers = handler_answers(endpoint.split(".", 1)[1], method)
        # 500 and 507 come from the app's handlers (an unexpected failure, a full disk),
        # never from the view: every operation lists 500, every one that writes lists 507.
        assert documented.pop(500) == {"internal"}, (path, method)
        writes = method in ("post", "put") and not path.endswith("/keyring")
        assert (documented.pop(507, None) == {"storage_full"}) == writes, (path, method)
        # 503 "unavailable" comes from the app's handler too (a database that does not
        # answer), on every operation: the API's clean-up runs before any of them.
        assert "unavailable" in documented.get(503, set()), (path, method)
        documented[503] = documented[503] - {"unavailable"}
        if not documented[503]:
            del documented[503]
        assert documented == answers, (path, method)
