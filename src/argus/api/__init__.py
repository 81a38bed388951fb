"""The operator API (issue 13): authentication and roles, request limits, and the /api/v1 FastAPI app.

Served by ``services/api`` (``argus run api``); see docs/operator-api-design.md for how it sits on the library.
"""
