"""The http_request block: what its parameters accept, how templates render, and its calls
over real HTTP to the tests' own API on the loopback (the address guard, redirects, size
and JSON rules, retries, the per-host budget, never sending a POST twice)."""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.http_api import HttpApi
from workflow_engine.blocks import BLOCKS, BlockContext
from workflow_engine.blocks.http_request import HttpRequest, HttpRequestParams
from workflow_engine.blocks.templates import Template, TemplateInvalid
from workflow_engine.errors import (
    AddressRefused,
    AnswerNotJson,
    AnswerTooLarge,
    OutboundError,
    OutboundOutcomeUnknown,
    OutboundStatus,
    OutboundUnavailable,
    TemplateMissingColumn,
)
from workflow_engine.outbound import AddressPolicy, HttpCalls, Outgoing
from workflow_engine.outbound.calls import KIND
from workflow_engine.settings import Settings
from workflow_engine.store import Store

LOOPBACK = AddressPolicy(networks=(ipaddress.ip_network("127.0.0.1/32"),))


def block(**params: Any) -> HttpRequest:
    return HttpRequest(HttpRequestParams.model_validate(
        {"url": "https://api.example.com/companies/{company}", **params}))


def problems(**params: Any) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as caught:
        HttpRequestParams.model_validate({"url": "https://api.example.com/x", **params})
    return [(".".join(str(p) for p in e["loc"]), e["type"]) for e in caught.value.errors()]


class TestParams:
    """What a definition may say, checked when it is saved."""

    @pytest.mark.parametrize("url", [
        "{base}/companies", "https://{host}/x", "https://api.example.com{path}",
        "ftp://api.example.com/x", "https://user:pw@api.example.com/x", "api.example.com/x",
    ])
    def test_the_scheme_and_host_must_be_literal(self, url: str) -> None:
        assert problems(url=url) == [("url", "url_invalid")]

    @pytest.mark.parametrize("url", [
        "https://api.example.com/x/{name!r}", "https://api.example.com/x/{}",
        "https://api.example.com/x/{a:>3}", "https://api.example.com/x/{open",
        "https://api.example.com/x/{secret.KEY}",
    ])
    def test_a_placeholder_is_a_column_and_nothing_more(self, url: str) -> None:
        assert problems(url=url) == [("url", "template_invalid")]

    def test_a_bad_jmespath_is_refused_at_its_column(self) -> None:
        assert problems(extract={"ok": "a.b", "bad": "a[?"}) == [
            ("extract.bad", "jmespath_invalid")]

    @pytest.mark.parametrize(("params", "reason"), [
        ({"method": "GET", "body": {"a": "{x}"}}, "a GET sends no body"),
        ({"method": "POST", "body": {"k": "{secret.KEY}"}}, "header values only"),
        ({"headers": {"Content-Length": "3"}}, "set by the client"),
        ({"extract": {"http_error": "a"}}, "the block's own column"),
    ])
    def test_inconsistent_params_are_refused(self, params: dict[str, Any], reason: str
                                             ) -> None:
        with pytest.raises(ValidationError, match=reason):
            HttpRequestParams.model_validate({"url": "https://api.example.com/x", **params})

    def test_columns_needed_and_produced(self) -> None:
        found = block(method="POST", headers={"X-Who": "{name}", "X-Key": "{secret.KEY}"},
                      body={"company": "{company}", "tags": ["{tag}"]},
                      extract={"employees": "employees"})
        assert found.required_columns() == ["company", "name", "tag"]
        assert found.secrets() == ["KEY"]
        assert found.columns_after(["company", "name", "tag"], None) == [  # type: ignore[arg-type]
            "company", "name", "tag", "employees", "http_status", "http_error"]

    def test_an_unknown_secret_is_named_at_its_header(self) -> None:
        found = block(headers={"Authorization": "Bearer {secret.TOKEN}"})
        assert [(p.path, p.code) for p in found.check_secrets({"OTHER"}, "p")] == [
            ("p.headers.Authorization", "unknown_secret")]
        assert found.check_secrets({"TOKEN"}, "p") == []

    def test_the_block_is_in_the_catalog_with_its_schema(self) -> None:
        schema = BLOCKS["http_request"].Params.model_json_schema()
        assert {"method", "url", "headers", "body", "extract", "rate_per_minute"} <= set(
            schema["properties"])


class TestTemplates:
    """Rendering a row into a request."""

    @given(st.text(min_size=1, max_size=40))
    def test_a_value_in_the_url_never_changes_where_it_goes(self, value: str) -> None:
        request = block().outgoing({"company": value}, "i", {})
        parts = urlsplit(request.url)
        assert (parts.scheme, parts.netloc) == ("https", "api.example.com")
        assert parts.query == ""
        assert parts.fragment == ""
        assert unquote(parts.path.removeprefix("/companies/")) == value

    def test_a_whole_placeholder_in_the_body_keeps_the_cell_s_value(self) -> None:
        found = block(method="POST", body={"n": "{n}", "text": "n={n}", "none": "{gone}"})
        body = found.outgoing({"company": "a", "n": 3, "gone": None}, "i", {}).body
        assert body == {"n": 3, "text": "n=3", "none": None}

    def test_a_missing_column_is_a_row_error_naming_it(self) -> None:
        with pytest.raises(TemplateMissingColumn, match="url names column 'company'"):
            block().outgoing({"name": "x"}, "i", {})

    def test_secrets_are_named_in_the_identity_and_valued_in_the_headers(self) -> None:
        found = block(headers={"Authorization": "Bearer {secret.TOKEN}"})
        request = found.outgoing({"company": "a"}, "i", {"TOKEN": "s3cr3t"})
        assert request.headers["Authorization"] == "Bearer s3cr3t"
        assert "s3cr3t" not in repr(request.identity)
        assert request.secret_headers == {"Authorization"}

    def test_literal_braces(self) -> None:
        assert Template.parse("{{x}} {y}").render({"y": 1}, where="t") == "{x} 1"
        with pytest.raises(TemplateInvalid):
            Template.parse("}")


NOT_PUBLIC = ["127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
              "169.254.0.0/16", "100.64.0.0/10", "0.0.0.0/8", "224.0.0.0/4", "240.0.0.0/4",
              "::1/128", "fc00::/7", "fe80::/10", "ff00::/8", "::ffff:127.0.0.0/104",
              # IPv4 inside IPv6: NAT64 of the metadata address and of the loopback, 6to4,
              # IPv4-translated and -compatible forms; NAT64's local use; site-local.
              "64:ff9b::a9fe:a9fe/128", "64:ff9b::7f00:0/104", "2002:7f00::/24",
              "2002:a00::/24", "::ffff:0:7f00:0/104", "::7f00:0/104", "::a00:0/104",
              "64:ff9b:1::/48", "fec0::/10"]


class TestAddressPolicy:
    """Which addresses the guard lets a connection reach."""

    @given(st.sampled_from(NOT_PUBLIC), st.integers(min_value=0))
    def test_no_address_of_a_non_public_network_is_allowed(self, network: str, offset: int
                                                           ) -> None:
        found = ipaddress.ip_network(network)
        address = found[offset % found.num_addresses]
        assert not AddressPolicy().allows(address)
        assert AddressPolicy(allow_private=True).allows(address)

    @given(st.integers(min_value=0, max_value=255))
    def test_an_allowed_network_opens_that_network_only(self, last: int) -> None:
        policy = AddressPolicy(networks=(ipaddress.ip_network("10.1.2.0/24"),))
        assert policy.allows(ipaddress.ip_address(f"10.1.2.{last}"))
        assert not policy.allows(ipaddress.ip_address(f"10.1.3.{last}"))

    @pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111",
                                         "64:ff9b::808:808", "2002:808:808::1"])
    def test_public_addresses_are_allowed(self, address: str) -> None:
        assert AddressPolicy().allows(ipaddress.ip_address(address))


@pytest.fixture
def calls(store: Store) -> Iterator[HttpCalls]:
    found = HttpCalls(store, secrets={"TOKEN": "s3cr3t"}, policy=LOOPBACK,
                      max_answer_bytes=1024 * 1024)
    yield found
    found.close()


def get(url: str, **changes: Any) -> Outgoing:
    return Outgoing(changes.pop("method", "GET"), url, changes.pop("headers", {}),
                    frozenset(changes.pop("secret_headers", ())), **changes)


def send(calls: HttpCalls, out: Outgoing, **options: Any) -> Any:
    return calls.send(out, **{"rate_per_minute": 60_000, "timeout": 5, "max_retries": 0,
                              "cancel": threading.Event(), **options})


class TestCalls:
    """One call, over real HTTP."""

    def test_a_json_answer(self, calls: HttpCalls, http_api: HttpApi) -> None:
        answer = send(calls, get(f"{http_api.url}/companies/acme"))
        assert (answer.status, answer.body["employees"]) == (200, 40)

    @pytest.mark.parametrize("host", [
        "127.0.0.1", "10.0.0.1", "169.254.169.254", "[::1]", "localhost", "192.168.1.1",
        "[::ffff:127.0.0.1]", "0.0.0.0", "224.0.0.1",
    ])
    def test_private_addresses_are_refused_unless_allowed(self, store: Store, host: str,
                                                          http_api: HttpApi) -> None:
        guarded = HttpCalls(store)
        try:
            with pytest.raises(AddressRefused, match="not a public address"):
                send(guarded, get(f"http://{host}:{http_api.url.rsplit(':', 1)[1]}/echo"))
        finally:
            guarded.close()
        assert http_api.requests() == []

    @pytest.mark.parametrize("target", [
        "http://127.0.0.2:{port}/echo", "http://10.1.2.3/", "http://169.254.169.254/latest",
        "http://0.0.0.0:{port}/echo", "http://[::1]:{port}/echo",
    ])
    def test_a_redirect_to_a_private_address_is_refused(
            self, calls: HttpCalls, http_api: HttpApi, target: str) -> None:
        port = http_api.url.rsplit(":", 1)[1]
        with pytest.raises(AddressRefused):
            send(calls, get(f"{http_api.url}/redirect?to={target.format(port=port)}"))
        assert [s.path for s in http_api.requests()] == ["/redirect"]

    def test_a_redirect_elsewhere_drops_the_secret_headers(
            self, calls: HttpCalls, http_api: HttpApi) -> None:
        other = HttpApi().start()
        try:
            answer = send(calls, get(f"{http_api.url}/redirect?to={other.url}/echo",
                                     headers={"X-Key": "s3cr3t", "X-Plain": "p"},
                                     secret_headers={"X-Key"}))
        finally:
            other.stop()
        assert answer.body["headers"]["x-plain"] == "p"
        assert "x-key" not in answer.body["headers"]
        assert http_api.requests()[0].headers["x-key"] == "s3cr3t"

    def test_a_header_value_that_is_not_ascii_is_a_row_error(
            self, calls: HttpCalls, http_api: HttpApi) -> None:
        with pytest.raises(OutboundError, match="header X-Lead is not ASCII"):
            send(calls, get(f"{http_api.url}/echo", headers={"X-Lead": "Tomás"}))
        assert http_api.requests() == []

    def test_a_header_broken_by_a_cell_is_refused_without_quoting_it(
            self, calls: HttpCalls, http_api: HttpApi) -> None:
        """A cell cannot inject a header; the error does not repeat the value (a secret
        may be in it)."""
        out = get(f"{http_api.url}/echo", method="POST", identity={"instance": "h"},
                  headers={"Authorization": "Bearer s3cr3t\r\nX-Injected: 1"},
                  secret_headers={"Authorization"})
        with pytest.raises(OutboundError, match="line break") as caught:
            send(calls, out)
        assert "s3cr3t" not in str(caught.value)
        assert http_api.requests() == []
        assert calls.records.get_many([out.key])[out.key].status == "not_taken"

    @pytest.mark.parametrize(("path", "error", "message"), [
        ("/text", AnswerNotJson, "text/plain, not JSON"),
        ("/huge", AnswerTooLarge, "longer than 1048576 bytes"),
        ("/status/404", OutboundStatus, "answered 404 NOT FOUND"),
    ])
    def test_answers_that_cannot_be_used(self, calls: HttpCalls, http_api: HttpApi,
                                         path: str, error: type[Exception], message: str
                                         ) -> None:
        with pytest.raises(error, match=message):
            send(calls, get(f"{http_api.url}{path}"))

    def test_an_answer_trickling_in_is_cut_off(self, calls: HttpCalls, http_api: HttpApi
                                               ) -> None:
        with pytest.raises(OutboundUnavailable, match="did not arrive whole within 1 s"):
            send(calls, get(f"{http_api.url}/trickle"), timeout=0.25)

    def test_503_is_retried_until_it_answers(self, calls: HttpCalls, http_api: HttpApi
                                             ) -> None:
        answer = send(calls, get(f"{http_api.url}/flaky/2"), max_retries=3)
        assert answer.status == 200
        assert len(http_api.requests("/flaky/2")) == 3

    def test_retries_end(self, calls: HttpCalls, http_api: HttpApi) -> None:
        with pytest.raises(OutboundStatus, match="503 SERVICE UNAVAILABLE, still after"):
            send(calls, get(f"{http_api.url}/flaky/9"), max_retries=1)
        assert len(http_api.requests("/flaky/9")) == 2

    def test_the_host_s_budget_spaces_every_request(self, calls: HttpCalls,
                                                    http_api: HttpApi) -> None:
        """Six requests at once at 600 a minute: their slots are five intervals apart
        (paced a little under the rate, never in a burst)."""
        threads = [threading.Thread(target=send, args=(calls, get(f"{http_api.url}/echo")),
                                    kwargs={"rate_per_minute": 600}) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        times = sorted(s.at for s in http_api.requests("/echo"))
        assert len(times) == 6
        interval = 60 / (600 * 0.98)
        # The first may leave late (its connection, a busy machine), never the last early:
        # one interval of slack for that, still far from a burst.
        assert times[-1] - times[0] >= 4 * interval

    def test_each_host_has_a_budget_of_its_own(self, calls: HttpCalls, http_api: HttpApi
                                               ) -> None:
        """Two requests to each of two hosts (the same server under two names) at 60 a
        minute: each host's pair is a second apart, but the hosts do not wait for each
        other."""
        port = http_api.url.rsplit(":", 1)[1]
        hosts = [f"http://127.0.0.1:{port}", f"http://localhost:{port}"]
        threads = [threading.Thread(target=send, args=(calls, get(f"{host}/echo?h={i}")),
                                    kwargs={"rate_per_minute": 60})
                   for i, host in enumerate(hosts) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seen = http_api.requests("/echo")
        by_host = {h: sorted(s.at for s in seen if s.query["h"] == h) for h in ("0", "1")}
        for times in by_host.values():
            assert times[1] - times[0] >= 0.8  # one slot of about 1.02 s apart
        assert max(s.at for s in seen) - min(s.at for s in seen) < 2.5

    def test_a_post_is_sent_once_and_its_answer_reused(self, calls: HttpCalls,
                                                       http_api: HttpApi) -> None:
        out = get(f"{http_api.url}/echo", method="POST", body={"a": 1}, has_body=True,
                  identity={"instance": "i", "body": {"a": 1}})
        first, second = send(calls, out), send(calls, out)
        assert first.body["json"] == {"a": 1}
        assert not first.reused
        assert second.reused
        assert second.body == first.body
        assert len(http_api.requests("/echo")) == 1

    @pytest.mark.parametrize("on_unknown", ["error", "resend"])
    def test_a_post_left_sending_by_a_stopped_run_is_not_sent_again(
            self, store: Store, calls: HttpCalls, http_api: HttpApi, on_unknown: str) -> None:
        out = get(f"{http_api.url}/echo", method="POST", identity={"instance": "j"})
        # A run of another process claimed it, and stopped before its answer was stored.
        assert calls.records.claim(out.key, KIND, owner="gone", now=calls._wall_ms(),
                                   lease_ms=600_000) is None
        if on_unknown == "error":
            with pytest.raises(OutboundOutcomeUnknown, match="not sent again"):
                send(calls, out)
            with pytest.raises(OutboundOutcomeUnknown):  # and on every later run
                send(calls, out)
            assert http_api.requests() == []
        else:
            assert send(calls, out, on_unknown_outcome="resend").status == 200
            assert len(http_api.requests("/echo")) == 1

    def test_a_post_whose_answer_is_lost_has_an_unknown_outcome(
            self, calls: HttpCalls, http_api: HttpApi) -> None:
        out = get(f"{http_api.url}/hold", method="POST", identity={"instance": "k"})
        with pytest.raises(OutboundOutcomeUnknown, match="may have taken effect"):
            send(calls, out, timeout=0.5, max_retries=3)
        http_api.released.set()
        with pytest.raises(OutboundOutcomeUnknown):
            send(calls, out, max_retries=3)
        assert len(http_api.requests("/hold")) == 1


class TestBlock:
    """The block over a table, with a context that carries the calls."""

    def test_rows_get_columns_or_errors(self, calls: HttpCalls, http_api: HttpApi,
                                        context: BlockContext) -> None:
        found = HttpRequest(HttpRequestParams.model_validate({
            "url": f"{http_api.url}/{{endpoint}}",
            "extract": {"method": "method", "path": "path", "query": "query"},
            "max_error_ratio": 1, "rate_per_minute": 60_000}))
        table = pd.DataFrame({"endpoint": ["echo", "text", "huge", "nowhere"]})
        seen: list[tuple[int, int | None]] = []
        context.http, context.instance_id = calls, "i"
        context.progress = lambda done, total: seen.append((done, total))
        output = found(table, context)
        assert list(output.columns) == ["endpoint", "method", "path", "query",
                                        "http_status", "http_error"]
        assert output.loc[0, ["method", "path"]].tolist() == ["GET", "/echo"]
        assert output.loc[0, "query"] == {}
        errors = output["http_error"].tolist()
        assert errors[0] is pd.NA
        assert output["http_status"].tolist()[0] == 200
        assert errors[1].startswith("answer_not_json: ")
        assert errors[2].startswith("answer_too_large: ")
        assert errors[3].startswith("http_status: ")
        assert seen[0] == (0, 4)
        assert seen[-1] == (4, 4)


    @pytest.mark.parametrize("concurrency", [1, 4])
    def test_rows_that_post_the_same_request_each_send_it_once(
            self, calls: HttpCalls, http_api: HttpApi, context: BlockContext,
            concurrency: int) -> None:
        """A POST is the row's own: four rows alike make four calls (none answered from
        another row, none taken for a lost one), and a retry sends none of them again."""
        block = HttpRequest(HttpRequestParams.model_validate({
            "url": f"{http_api.url}/echo", "method": "POST", "body": {"who": "{name}"},
            "extract": {"who": "json.who"}, "concurrency": concurrency,
            "rate_per_minute": 60_000}))
        table = pd.DataFrame({"name": ["Ann"] * 4})
        context.http, context.instance_id, context.step = calls, "i", "notify"
        output = block(table, context)
        assert output["http_error"].isna().all()
        assert output["who"].tolist() == ["Ann"] * 4
        assert len(http_api.requests("/echo")) == 4
        assert context.details["http_request"]["reused"] == 0
        context.details = {}
        again = block(table, context)
        assert again["who"].tolist() == ["Ann"] * 4
        assert len(http_api.requests("/echo")) == 4
        assert context.details["http_request"]["reused"] == 4
        # The same rows in another step of the instance are requests of their own.
        context.step = "notify-again"
        block(table, context)
        assert len(http_api.requests("/echo")) == 8


class TestServerConfiguration:
    """Secrets and the guard's allowances, from the environment."""

    def test_secrets_come_from_json_and_never_show(self, monkeypatch: pytest.MonkeyPatch
                                                   ) -> None:
        monkeypatch.setenv("HTTP_SECRETS", '{"API_TOKEN": "s3cr3t"}')
        monkeypatch.setenv("HTTP_ALLOWED_NETWORKS", "10.20.0.0/16, 127.0.0.1")
        found = Settings()
        assert found.http_secrets == {"API_TOKEN": "s3cr3t"}
        assert "s3cr3t" not in repr(found)
        assert [str(n) for n in found.http_networks] == ["10.20.0.0/16", "127.0.0.1/32"]

    @pytest.mark.parametrize(("changes", "message"), [
        ({"http_secrets": {"not-a-name": "x"}}, "names must match"),
        ({"http_allowed_networks": "10.0.0.0/8,intranet"}, "'intranet' is no network"),
    ])
    def test_bad_configuration_stops_the_start(self, changes: dict[str, Any], message: str
                                               ) -> None:
        with pytest.raises(ValidationError, match=message):
            Settings(**changes)
