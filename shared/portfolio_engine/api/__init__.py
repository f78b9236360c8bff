"""The HTTP API: powertools' event handler over the store of record and the state machines.

``app.build_app`` assembles one ``APIGatewayHttpResolver`` from the route modules under ``routes/`` (one per
resource): the Lambda function's (``functions/api``), and on this machine the same one under uvicorn, each
request turned into the HTTP API's event (``asgi``, ``spe api``). Every route declares the role it needs
(``auth``); every error becomes one JSON shape with one status per error type (``errors``); long work
starts a state machine and answers 202 with the run's ``Location`` (``launcher``).
"""
