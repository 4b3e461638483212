"""The app and portal channel (issue 6; Art 1(b)): notices into the government mobile app
("Dowlat Hamrah") and other providers' apps and portals, with fallback to SMS.

- ``providers``: operators register providers and their keys; providers authenticate.
- ``service``: citizens' registrations, routing a message to the app, the pull API, read
  receipts and replies.
- ``worker``: the push worker (signed pushes, retries, fallback at the deadline).

See docs/APP_CHANNEL.md.
"""
