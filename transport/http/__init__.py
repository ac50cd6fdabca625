"""The node's HTTP API: the reference's ``/api/v1`` routes, the pull API, JWT auth and HTTPS.

Every node serves the same routes (FastAPI on hypercorn's trio worker, inside the node's own
trio run); job commands go through the node's gateway, so a follower answers as the leader
does. The package is small files, each one thing:

- :mod:`.server`: :func:`serve_http`, the entry point the node starts (bind, TLS, serve);
- :mod:`.app`: :func:`create_app`, the FastAPI app, its middleware and its OpenAPI document;
- :mod:`.routes_jobs`, :mod:`.routes_cluster`, :mod:`.routes_pull`, :mod:`.routes_auth`: routes;
- :mod:`.models`: request and response bodies; :mod:`.errors`: ``{"error": ...}`` answers;
- :mod:`.limits`: the body guard (413, JSON the store can keep);
- :mod:`.auth`: users, scrypt password hashes, JWT tokens, roles; :mod:`.guard`: who may call
  a route; :mod:`.api_error`: the exception routes raise;
- :mod:`.cluster_view`: the leader as this node sees it, and the leader's balancer's workers;
- :mod:`.state`: what routes share; :mod:`.election_info`: what each election algorithm is.
"""
