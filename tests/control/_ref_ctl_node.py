"""A reference SLIM node (slim-bindings) managed by a controller, as a subprocess for tests.

Usage: ``python _ref_ctl_node.py SOUTHBOUND_PORT NODE_ID DOMAIN SECRET``. It picks a free
loopback port, writes a YAML config with a data-plane server, the shared-secret ``auth`` the
node signs its registration with, and ``controller.clients`` pointing at the controller, starts,
prints ``{"event": "ready", "port": N, "controller_port": M}`` (M: the node's own
ControllerService, what slimctl's ``node ...`` commands use) and runs until its stdin
closes (so a crashed test run leaves no orphan) or 60 s pass. The Rust runtime's logs go to stderr.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
import threading
import time


def main() -> int:
    south, node_id, domain, secret = sys.argv[1:5]
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    port, ctl_port = ports
    cfg = f"""tracing:
  log_level: warn
runtime:
  n_cores: 0
services:
  slim/{node_id}:
    node_id: {node_id}
    domain_name: {domain}
    auth:
      type: shared_secret
      secret: "{secret}"
    dataplane:
      servers:
        - endpoint: "127.0.0.1:{port}"
          tls:
            insecure: true
      clients: []
    controller:
      servers:
        - endpoint: "127.0.0.1:{ctl_port}"
          tls:
            insecure: true
      clients:
        - endpoint: "http://127.0.0.1:{south}"
          tls:
            insecure: true
"""
    fd, path = tempfile.mkstemp(prefix=f"ref-ctl-{node_id}-", suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        f.write(cfg)
    import slim_bindings as slim

    slim.initialize_from_config_with_error(path)
    os.unlink(path)
    out.write(json.dumps({"event": "ready", "port": port, "controller_port": ctl_port}) + "\n")

    def watch() -> None:
        while sys.stdin.buffer.read(4096):
            pass
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()
    time.sleep(60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
