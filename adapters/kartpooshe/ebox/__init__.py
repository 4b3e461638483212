"""The reference e-box service (``payam ebox``): the national e-box's side of EBOX-PROTOCOL v1.

The national e-box's interface is not public, so Payam Iran ships this service for development,
tests and the demo. It keeps its own PostgreSQL database and migrations, takes letters from the
gateway (``api``), serves the citizens' Persian web inbox (``web``), and reports openings and
replies back to the gateway through a durable outbox (``outbox``).
"""
