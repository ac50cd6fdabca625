"""The image's HEALTHCHECK: exit 0 if this node's ``/health`` answers 200, else 1 (one line why).

It asks ``http://127.0.0.1:$SERVER_PORT/health`` (``https`` with ``TLS_ENABLED``: the probe
trusts the node's own certificate without checking names, since it dials 127.0.0.1). With the
HTTP API off (``HTTP_ENABLED=false``) it asks the metrics endpoint
(``/metrics`` on ``METRICS_PORT``) instead. Standard library only: the image has no curl.
"""

from __future__ import annotations

import os
import ssl
import sys
import urllib.error
import urllib.request

TRUE = ("1", "true", "yes", "on")


def probe_url(env: dict[str, str]) -> str:
    """The URL to probe for the node configured by ``env``."""
    scheme = "https" if env.get("TLS_ENABLED", "").strip().lower() in TRUE else "http"
    if env.get("HTTP_ENABLED", "true").strip().lower() in TRUE:
        return f"{scheme}://127.0.0.1:{env.get('SERVER_PORT') or '8080'}/health"
    return f"{scheme}://127.0.0.1:{env.get('METRICS_PORT') or '9090'}/metrics"


def main() -> int:
    url = probe_url(dict(os.environ))
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=4.0, context=context) as answer:
            status = int(answer.status)
    except urllib.error.HTTPError as e:
        status = e.code
    except (OSError, ValueError) as e:
        print(f"unhealthy: {url}: {e}")
        return 1
    if status != 200:
        print(f"unhealthy: {url} answered {status}")
        return 1
    print(f"healthy: {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
