"""E-box channel (Kartpooshe): letter delivery client, reference e-box service and web inbox.
Built by the e-box issue; nothing here is wired yet."""
