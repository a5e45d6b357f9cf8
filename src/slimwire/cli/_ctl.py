"""``slimwire ctl``: operate a controller (and a node directly), like the reference ``slimctl``.

Controller commands use the northbound ``ControlPlaneService`` (``--server``, default
127.0.0.1:50051, with ``-b USER:PASS``); ``node route list``, ``node connection list`` and
``route add|del`` talk to a node's own ``ControllerService`` (default 127.0.0.1:46358).
Tables follow slimctl's layout; ``--output json`` prints the same rows as JSON.
Exit codes: 0 ok, 1 the call failed, 2 bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any

HELP = "operate a SLIM controller or node (slimctl's commands)"

CONTROLLER_DEFAULT = "127.0.0.1:50051"
NODE_DEFAULT = "127.0.0.1:46358"
AUTH_ENV = "SLIMWIRE_CTL_BASIC_AUTH"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-s", "--server", help="HOST:PORT of the controller (or of the node)")
    p.add_argument("-o", "--output", choices=("table", "json"), default="table")
    p.add_argument("-b", "--basic-auth", metavar="USER:PASS", help=f"or ${AUTH_ENV}")
    p.add_argument("--timeout", type=float, default=15.0, help="seconds per call (15)")
    p.add_argument("--tls-ca", metavar="FILE", help="use TLS, trusting this CA (PEM)")
    p.add_argument(
        "--tls-insecure", action="store_true", help="use TLS without checking the certificate"
    )
    sub = p.add_subparsers(dest="ctl_cmd", required=True, metavar="COMMAND")

    node = sub.add_parser("node", help="nodes").add_subparsers(dest="sub", required=True)
    node.add_parser("list", aliases=["ls"], help="nodes registered at the controller")
    nr = node.add_parser("route", help="a node's own routes").add_subparsers(
        dest="sub2", required=True
    )
    nr.add_parser("list", aliases=["ls"], help="routes of the node at --server")
    nc = node.add_parser("connection", help="a node's own connections").add_subparsers(
        dest="sub2", required=True
    )
    nc.add_parser("list", aliases=["ls"], help="connections of the node at --server")

    conn = sub.add_parser("connection", aliases=["conn"], help="a node's connections")
    cl = conn.add_subparsers(dest="sub", required=True).add_parser("list", aliases=["ls"])
    cl.add_argument("-n", "--node-id", required=True)

    route = sub.add_parser("route", help="routes").add_subparsers(dest="sub", required=True)
    rl = route.add_parser("list", aliases=["ls"], help="routes at the controller")
    rl.add_argument("-n", "--node-id", help="routes of one node (asked to the node)")
    rl.add_argument("--origin-node-id", "--src", dest="src", default="")
    rl.add_argument("-t", "--target-node-id", "--dst", dest="dst", default="")
    rl.add_argument("-a", "--all", action="store_true", help="every status, not only applied")
    for verb, aliases in (("add", []), ("del", ["delete", "remove", "rm"])):
        rp = route.add_parser(verb, aliases=aliases, help=f"{verb} a route on the node at --server")
        rp.add_argument("name", help="org/ns/svc[/id]")
        rp.add_argument("via", choices=["via"])
        rp.add_argument("link_id", help="the link to route over")

    link = sub.add_parser("link", help="links and topology links").add_subparsers(
        dest="sub", required=True
    )
    ll = link.add_parser("list", aliases=["ls"])
    ll.add_argument("--origin-node-id", "--src", dest="src", default="")
    ll.add_argument("-t", "--target-node-id", "--dst", dest="dst", default="")
    ll.add_argument("-a", "--all", action="store_true")
    for verb, aliases in (("add", []), ("del", ["remove", "rm"])):
        lp = link.add_parser(verb, aliases=aliases, help=f"{verb} a topology link")
        lp.add_argument("domain_a")
        lp.add_argument("domain_b")
        lp.add_argument("--segment", default="default")

    dom = sub.add_parser("domain", help="domains").add_subparsers(dest="sub", required=True)
    dom.add_parser("list", aliases=["ls"])
    da = dom.add_parser("add")
    da.add_argument("domain_name")
    da.add_argument("secret")
    dom.add_parser("del", aliases=["remove", "rm"]).add_argument("domain_name")

    seg = sub.add_parser("segment", help="topology segments").add_subparsers(
        dest="sub", required=True
    )
    seg.add_parser("list", aliases=["ls"])
    seg.add_parser("add").add_argument("name")
    seg.add_parser("del", aliases=["remove", "rm"]).add_argument("name")


_CANON = {"ls": "list", "delete": "del", "remove": "del", "rm": "del", "conn": "connection"}


def _canon(x: str | None) -> str | None:
    return None if x is None else _CANON.get(x, x)


def run(args: argparse.Namespace) -> int:
    from slimwire.errors import SlimwireError

    cmd = (_canon(args.ctl_cmd), _canon(args.sub), _canon(getattr(args, "sub2", None)))
    try:
        out = asyncio.run(_dispatch(args, cmd))
    except SlimwireError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(out)
    return 0


# -- calls ---------------------------------------------------------------------------------


def _headers(args: argparse.Namespace) -> list[tuple[str, str]]:
    auth = args.basic_auth or os.environ.get(AUTH_ENV)
    if not auth:
        return []
    return [("authorization", "Basic " + base64.b64encode(auth.encode()).decode())]


def _url(server: str, args: argparse.Namespace | None = None) -> str:
    if "://" in server:
        return server
    tls = args is not None and (args.tls_ca or args.tls_insecure)
    return f"https://{server}" if tls else f"http://{server}"


def _ssl(args: argparse.Namespace) -> Any:
    import ssl

    if not (args.tls_ca or args.tls_insecure):
        return None
    ctx = ssl.create_default_context(cafile=args.tls_ca)
    if args.tls_insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def _nb(args: argparse.Namespace, method: str, req: Any, resp: type[Any]) -> Any:
    from slimwire.control._controller import CONTROL_PLANE_SERVICE
    from slimwire.transport import connect

    async with await connect(_url(args.server or CONTROLLER_DEFAULT, args), ssl=_ssl(args)) as ch:
        raw = await ch.unary(
            CONTROL_PLANE_SERVICE + method,
            req.SerializeToString(),
            headers=_headers(args),
            timeout=args.timeout,
        )
    return resp.FromString(raw)


async def _nb_stream(args: argparse.Namespace, method: str, req: Any, resp: type[Any]) -> list[Any]:
    from slimwire.control._controller import CONTROL_PLANE_SERVICE
    from slimwire.transport import connect

    async with (
        asyncio.timeout(args.timeout),
        await connect(_url(args.server or CONTROLLER_DEFAULT, args), ssl=_ssl(args)) as ch,
    ):
        return [
            resp.FromString(m)
            async for m in ch.server_stream(
                CONTROL_PLANE_SERVICE + method, req.SerializeToString(), headers=_headers(args)
            )
        ]


async def _node_call(args: argparse.Namespace, msg: Any, reply: str) -> list[Any]:
    """Open a control channel to a node, send ``msg`` and collect the ``reply`` pages."""
    from slimwire._proto import controller_pb2 as cpb
    from slimwire.control._controller import CONTROLLER_SERVICE
    from slimwire.transport import open_stream

    stream = await open_stream(
        _url(args.server or NODE_DEFAULT, args), CONTROLLER_SERVICE, ssl=_ssl(args)
    )
    pages = []
    try:
        stream.send(msg.SerializeToString())
        async with asyncio.timeout(args.timeout):
            while True:
                batch = await stream.recv()
                if not batch:
                    break
                for raw in batch:
                    m = cpb.ControlMessage.FromString(raw)
                    body = getattr(m, m.WhichOneof("payload") or "ack")
                    if m.WhichOneof("payload") != reply:
                        continue
                    if getattr(body, "original_message_id", "") != msg.message_id:
                        continue
                    pages.append(body)
                    if reply == "config_command_ack" or body.done:
                        return pages
    finally:
        stream.abort()
    return pages


async def _dispatch(args: argparse.Namespace, cmd: tuple[str | None, ...]) -> str:
    from slimwire._proto import controller_pb2 as cpb
    from slimwire._proto import controlplane_pb2 as npb

    js = args.output == "json"
    match cmd:
        case ("node", "list", _):
            nodes = await _nb_stream(args, "ListNodes", npb.NodeListRequest(), npb.NodeEntry)
            return _nodes(nodes, js)
        case ("node", "route", "list") | ("node", "connection", "list"):
            kind = "route" if cmd[1] == "route" else "connection"
            msg = cpb.ControlMessage(message_id=str(uuid.uuid4()))
            getattr(msg, f"{kind}_list_request").SetInParent()
            pages = await _node_call(args, msg, f"{kind}_list_response")
            entries = [e for p in pages for e in p.entries]
            if kind == "route":
                return _node_routes(args.server or NODE_DEFAULT, entries, js)
            return _connections(args.server or NODE_DEFAULT, entries, js)
        case ("connection", "list", _):
            resp = await _nb(
                args, "ListConnections", npb.Node(id=args.node_id), cpb.ConnectionListResponse
            )
            return _connections(args.node_id, list(resp.entries), js)
        case ("route", "list", _):
            if args.node_id:
                resp = await _nb(
                    args, "ListNodeRoutes", npb.Node(id=args.node_id), cpb.RouteListResponse
                )
                return _node_routes(args.node_id, list(resp.entries), js)
            req = npb.RouteListRequest(srcNodeId=args.src, destNodeId=args.dst)
            routes = await _nb_stream(args, "ListRoutes", req, npb.RouteEntry)
            if not args.all:
                routes = [r for r in routes if r.status == npb.ROUTE_STATUS_APPLIED]
            return _routes(routes, args.all, js)
        case ("route", "add" | "del", _):
            return await _route_change(args, cmd[1] == "add", js)
        case ("link", "list", _):
            lreq = npb.LinkListRequest(srcNodeId=args.src, destNodeId=args.dst)
            links = await _nb_stream(args, "ListLinks", lreq, npb.LinkEntry)
            if not args.all:
                links = [
                    lk for lk in links if lk.status == npb.LINK_STATUS_APPLIED and not lk.deleted
                ]
            return _links(links, args.all, js)
        case ("link", "add", _):
            r = npb.AddTopologyLinkRequest(
                domain_a=args.domain_a, domain_b=args.domain_b, segment=args.segment
            )
            resp = await _nb(args, "AddTopologyLink", r, npb.AddTopologyLinkResponse)
            pair = f"{args.domain_a} <-> {args.domain_b}"
            text = f"Topology link {pair} added to segment '{args.segment}'\n"
            text += "".join(f"warning: {w}\n" for w in resp.warnings)
            return _done(js, text, {"added": True, "warnings": list(resp.warnings)})
        case ("link", "del", _):
            r2 = npb.RemoveTopologyLinkRequest(
                domain_a=args.domain_a, domain_b=args.domain_b, segment=args.segment
            )
            await _nb(args, "RemoveTopologyLink", r2, npb.RemoveTopologyLinkResponse)
            return _done(
                js,
                f"Topology link {args.domain_a} <-> {args.domain_b} removed\n",
                {"removed": True},
            )
        case ("domain", "list", _):
            resp = await _nb(args, "ListDomains", npb.ListDomainsRequest(), npb.ListDomainsResponse)
            return _domains(list(resp.domains), js)
        case ("domain", "add", _):
            await _nb(
                args,
                "AddDomain",
                npb.AddDomainRequest(domain_name=args.domain_name, secret=args.secret),
                npb.AddDomainResponse,
            )
            return _done(js, f"Domain '{args.domain_name}' added\n", {"added": args.domain_name})
        case ("domain", "del", _):
            await _nb(
                args,
                "RemoveDomain",
                npb.RemoveDomainRequest(domain_name=args.domain_name),
                npb.RemoveDomainResponse,
            )
            return _done(
                js, f"Domain '{args.domain_name}' removed\n", {"removed": args.domain_name}
            )
        case ("segment", "list", _):
            resp = await _nb(
                args, "ListSegments", npb.SegmentListRequest(), npb.SegmentListResponse
            )
            return _segments(list(resp.segments), js)
        case ("segment", "add", _):
            await _nb(
                args, "AddSegment", npb.AddSegmentRequest(name=args.name), npb.AddSegmentResponse
            )
            return _done(js, f"Segment '{args.name}' added\n", {"added": args.name})
        case ("segment", "del", _):
            await _nb(
                args,
                "RemoveSegment",
                npb.RemoveSegmentRequest(name=args.name),
                npb.RemoveSegmentResponse,
            )
            return _done(js, f"Segment '{args.name}' removed\n", {"removed": args.name})
    raise ValueError(f"unknown command: {' '.join(c for c in cmd if c)}")


async def _route_change(args: argparse.Namespace, add: bool, js: bool) -> str:
    from slimwire._proto import controller_pb2 as cpb
    from slimwire.errors import ControlPlaneError
    from slimwire.names import Name

    name = Name.parse(args.name)
    msg = cpb.ControlMessage(message_id=str(uuid.uuid4()))
    route = (msg.config_command.routes_to_set if add else msg.config_command.routes_to_delete).add()
    name.fill_proto(route.name)
    route.link_id = args.link_id
    pages = await _node_call(args, msg, "config_command_ack")
    if not pages:
        raise ControlPlaneError("the node did not acknowledge the command")
    status = pages[0].routes_status
    failed = [s.error_msg or "failed" for s in status if not s.success]
    if failed:
        raise ControlPlaneError(f"the node refused: {'; '.join(failed)}")
    verb = "added" if add else "deleted"
    return _done(js, f"Route {name.short()} via {args.link_id} {verb}\n", {verb: True})


# -- output --------------------------------------------------------------------------------


def _done(js: bool, text: str, obj: dict[str, Any]) -> str:
    return json.dumps(obj) + "\n" if js else text


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """slimctl's layout: two-space indent, columns padded to their widest cell, a rule."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  " + "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    total = sum(widths) + 2 * len(widths)
    return "\n".join([line(headers), "  " + "-" * total, *(line(r) for r in rows)]) + "\n"


def _json(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, indent=2) + "\n"


def _name_str(n: Any) -> str:
    from slimwire.names import Name

    try:
        return str(Name.from_proto(n))
    except ValueError:
        return "None"


_NODE_STATUS = {1: "Connected", 2: "NotConnected"}
_TYPES = {0: "Local", 1: "Remote", 2: "Peer", 3: "Edge"}
_ROUTE_STATUS = {1: "APPLIED", 2: "FAILED", 3: "DELETED", 4: "PENDING"}
_LINK_STATUS = {1: "PENDING", 2: "APPLIED", 3: "FAILED"}


def _telemetry(n: Any) -> dict[str, Any] | None:
    """The figures our controller puts in a node's first ``ConnectionDetails.metadata``
    (``slimwire_telemetry``); None from a reference controller or before the first scrape."""
    from google.protobuf.json_format import MessageToDict

    from slimwire.control._store import METRICS_KEY, TELEMETRY_KEY

    for c in n.connections:
        meta = MessageToDict(c.metadata) if c.HasField("metadata") else {}
        if TELEMETRY_KEY in meta and isinstance(meta[TELEMETRY_KEY], dict):
            figures: dict[str, Any] = dict(meta[TELEMETRY_KEY])
            for key, value in figures.items():
                if isinstance(value, float) and value.is_integer() and key != "last_seen":
                    figures[key] = int(value)
            for counts in ("drops", "retransmissions"):
                by_kind = figures.get(counts)
                if isinstance(by_kind, dict):
                    figures[counts] = {k: int(v) for k, v in by_kind.items()}
            figures["metrics_url"] = meta.get(METRICS_KEY, "")
            order = {k: i for i, k in enumerate(_TELEMETRY_ORDER)}
            return dict(sorted(figures.items(), key=lambda kv: order.get(kv[0], len(order))))
    return None


_TELEMETRY_ORDER = (
    "connections",
    "connections_up",
    "subscriptions",
    "messages_in",
    "messages_out",
    "bytes_in",
    "bytes_out",
    "drops",
    "retransmissions",
    "last_seen",
    "metrics_url",
)


def _ago(when: object) -> str:
    if not isinstance(when, int | float) or when <= 0:
        return "-"
    return f"{max(0, int(time.time() - when))}s ago"


_FIGURE_COLUMNS = {
    "CONNS": "connections",
    "SUBS": "subscriptions",
    "MSGS_IN": "messages_in",
    "MSGS_OUT": "messages_out",
    "BYTES_IN": "bytes_in",
    "BYTES_OUT": "bytes_out",
}


def _nodes(nodes: list[Any], js: bool) -> str:
    rows: list[dict[str, Any]] = []
    figures: list[dict[str, Any] | None] = []
    for n in nodes:
        row: dict[str, Any] = {
            "node_id": n.id,
            "domain": n.domain,
            "status": _NODE_STATUS.get(n.status, "Unknown"),
            "endpoint": ", ".join(c.endpoint for c in n.connections) or "-",
            "public_endpoint": ", ".join(
                c.external_endpoint for c in n.connections if c.external_endpoint
            )
            or "-",
        }
        f = _telemetry(n)
        if f is not None:
            row["telemetry"] = f
        rows.append(row)
        figures.append(f)
    if js:
        return _json(rows)
    text = f"{len(rows)} node(s) registered\n\n"
    if not rows:
        return text
    headers = ["NODE_ID", "DOMAIN", "STATUS", "ENDPOINT", "PUBLIC_ENDPOINT"]
    cells = [[str(v) for k, v in r.items() if k != "telemetry"] for r in rows]
    if any(f is not None for f in figures):
        # slimctl's columns first; ours only when the controller reported figures
        headers += [*_FIGURE_COLUMNS, "DROPS", "RTX", "LAST_SEEN"]
        for row_cells, f in zip(cells, figures, strict=True):
            if f is None:
                row_cells.extend(["-"] * (len(_FIGURE_COLUMNS) + 3))
                continue
            row_cells.extend(str(f.get(key, "-")) for key in _FIGURE_COLUMNS.values())
            drops = f.get("drops") or {}
            row_cells.append(",".join(f"{k}={v}" for k, v in sorted(drops.items()) if v) or "0")
            rtx = f.get("retransmissions")
            # requests/replies received (a controller older than this shows "-")
            row_cells.append(
                f"{rtx.get('request', 0)}/{rtx.get('reply', 0)}" if isinstance(rtx, dict) else "-"
            )
            row_cells.append(_ago(f.get("last_seen")))
    return text + _table(headers, cells)


def _conn_row(c: Any) -> dict[str, Any]:
    endpoint = "-"
    if c.connection_type == 3:
        endpoint = "APP"
    elif c.config_data:
        try:
            endpoint = str(json.loads(c.config_data).get("endpoint", "-"))
        except (ValueError, AttributeError):
            endpoint = "-"
    return {
        "conn_id": str(c.id),
        "type": _TYPES.get(c.connection_type, "?"),
        "direction": "Incoming" if c.direction == 1 else "Outgoing",
        "endpoint": endpoint,
        "link_id": c.link_id if c.HasField("link_id") else "-",
    }


def _connections(node: str, entries: list[Any], js: bool) -> str:
    rows = [_conn_row(c) for c in entries]
    if js:
        return _json(rows)
    text = f"Connections for node: {node}\n{len(rows)} connection(s)\n\n"
    if rows:
        text += _table(
            ["CONN_ID", "TYPE", "DIRECTION", "ENDPOINT", "LINK_ID"],
            [list(r.values()) for r in rows],
        )
    return text


def _node_routes(node: str, entries: list[Any], js: bool) -> str:
    rows = []
    for e in entries:
        name = _name_str(e.name) if e.HasField("name") else "-"
        if not e.connections:
            rows.append({"route": name, "type": "-", "endpoint": "-", "link_id": "-"})
        for c in e.connections:
            peer = c.peer_node_id if c.HasField("peer_node_id") else "-"
            rows.append(
                {
                    "route": name,
                    "type": _TYPES.get(c.connection_type, "?"),
                    "endpoint": "APP" if c.connection_type == 3 else peer,
                    "link_id": c.link_id if c.HasField("link_id") else "-",
                }
            )
    if js:
        return _json(rows)
    text = f"Routes for node: {node}\n{len(entries)} route(s)\n\n"
    if rows:
        text += _table(["ROUTE", "TYPE", "ENDPOINT", "LINK_ID"], [list(r.values()) for r in rows])
    return text


def _routes(routes: list[Any], all_: bool, js: bool) -> str:
    rows = [
        {
            "source": r.source_node_id,
            "dest_node": r.dest_node_id,
            "route": _name_str(r.name),
            "status": _ROUTE_STATUS.get(r.status, "UNKNOWN"),
            "link_id": r.link_id or "-",
        }
        for r in routes
    ]
    if js:
        return _json(rows)
    text = f"Routes: {len(rows)} ({'all statuses' if all_ else 'applied only'})\n\n"
    if rows:
        text += _table(
            ["SOURCE", "DEST_NODE", "ROUTE", "STATUS", "LINK_ID"], [list(r.values()) for r in rows]
        )
    return text


def _links(links: list[Any], all_: bool, js: bool) -> str:
    rows = [
        {
            "link_id": lk.link_id,
            "source": lk.source_node_id,
            "dest_node": lk.dest_node_id,
            "dest_endpoint": lk.dest_endpoint,
            "status": "DELETED" if lk.deleted else _LINK_STATUS.get(lk.status, "UNKNOWN"),
        }
        for lk in links
    ]
    if js:
        return _json(rows)
    text = f"Links: {len(rows)} ({'all statuses' if all_ else 'applied only'})\n\n"
    if rows:
        text += _table(
            ["LINK_ID", "SOURCE", "DEST_NODE", "DEST_ENDPOINT", "STATUS"],
            [list(r.values()) for r in rows],
        )
    return text


def _domains(domains: list[Any], js: bool) -> str:
    rows = [{"domain": d.domain_name, "nodes": list(d.nodes)} for d in domains]
    if js:
        return _json(rows)
    text = f"{len(rows)} domain(s)\n\n"
    if rows:
        text += _table(
            ["DOMAIN", "NODES"],
            [[r["domain"], ", ".join(r["nodes"]) or "(no nodes connected)"] for r in rows],
        )
    return text


def _segments(segments: list[Any], js: bool) -> str:
    rows = [
        {
            "name": s.name,
            "domains": list(s.domains),
            "edges": [[e.domain_a, e.domain_b] for e in s.edges],
        }
        for s in segments
    ]
    if js:
        return _json(rows)
    text = f"{len(rows)} segment(s)\n\n"
    if rows:
        text += _table(
            ["SEGMENT", "DOMAINS", "EDGES"],
            [
                [
                    r["name"],
                    ", ".join(r["domains"]) or "-",
                    ", ".join(f"{a}<->{b}" for a, b in r["edges"]) or "-",
                ]
                for r in rows
            ],
        )
    return text
