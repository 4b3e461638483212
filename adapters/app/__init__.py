"""The app and portal channel's simulator (``payam app-sim``).

The channel itself is in gateway/app_channel."""
