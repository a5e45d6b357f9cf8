"""The northbound API from a stock gRPC client (grpcio), as slimctl (tonic) would call it:
basic auth in metadata, server-streaming ListNodes, unary AddDomain/ListDomains, and the status
codes of refusals."""

from __future__ import annotations

import base64

import grpc
import pytest

from slimwire._proto import controlplane_pb2 as npb
from slimwire.control._controller import Controller
from slimwire.control._store import Store

LO = ("127.0.0.1", 0)
S = "0123456789abcdef0123456789abcdef"


async def test_grpcio_client() -> None:
    auth = (("authorization", "Basic " + base64.b64encode(b"op:pw").decode()),)
    async with (
        Controller(Store(), basic_auth=("op", "pw"), southbound=LO, northbound=LO) as ctl,
        grpc.aio.insecure_channel(f"127.0.0.1:{ctl.northbound_port}") as ch,
    ):
        svc = "/controlplane.proto.v1.ControlPlaneService/"
        add = ch.unary_unary(
            svc + "AddDomain",
            request_serializer=npb.AddDomainRequest.SerializeToString,
            response_deserializer=npb.AddDomainResponse.FromString,
        )
        await add(npb.AddDomainRequest(domain_name="d1", secret=S), metadata=auth, timeout=5)
        domains = ch.unary_unary(
            svc + "ListDomains",
            request_serializer=npb.ListDomainsRequest.SerializeToString,
            response_deserializer=npb.ListDomainsResponse.FromString,
        )
        resp = await domains(npb.ListDomainsRequest(), metadata=auth, timeout=5)
        assert [d.domain_name for d in resp.domains] == ["d1"]
        nodes = ch.unary_stream(
            svc + "ListNodes",
            request_serializer=npb.NodeListRequest.SerializeToString,
            response_deserializer=npb.NodeEntry.FromString,
        )
        assert [n async for n in nodes(npb.NodeListRequest(), metadata=auth, timeout=5)] == []
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await domains(npb.ListDomainsRequest(), timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await add(npb.AddDomainRequest(domain_name="d1", secret="x"), metadata=auth, timeout=5)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "invalid secret" in (info.value.details() or "")
