#!/usr/bin/env bash
# Printed by `make run` before the gateway starts: what a newcomer does next.
set -eu
token_file=$(.venv/bin/python -c 'from gateway.config import load_config; print(load_config().auth.admin_token_file)')
port=$(.venv/bin/python -c 'from gateway.config import load_config; print(load_config().http.port)')
cat <<TXT

  Payam Iran gateway — سامانه یکپارچه پیام ایران
  ------------------------------------------------
  Admin token (role admin) is in: ${token_file}
  Health:   curl http://127.0.0.1:${port}/readyz
  API spec: http://127.0.0.1:${port}/v1/openapi.json

  In another terminal, create a first agency, a key and a 4040 number:
    .venv/bin/payam agency create --name-fa 'سازمان نمونه' --name-en 'Sample Agency' --legal-id 10380284790
    .venv/bin/payam key create <agency id> --name first --type live
    .venv/bin/payam number allocate <agency id> --kind shortcode --value 404012
  Then call the API as that agency (each token works once):
    curl -H "Authorization: Bearer \$(.venv/bin/payam jwt <key id> --secret <secret>)" http://127.0.0.1:${port}/v1/me
  Send an SMS through the SMSC simulator and watch it reach "delivered":
    curl -H "Authorization: Bearer \$(.venv/bin/payam jwt <key id> --secret <secret>)" \\
         -H 'Content-Type: application/json' -d '{"to": "09121234567", "text": "سلام"}' \\
         http://127.0.0.1:${port}/v1/messages
    curl -H "Authorization: Bearer \$(.venv/bin/payam jwt <key id> --secret <secret>)" http://127.0.0.1:${port}/v1/messages/<id>
  A citizen replies (the simulator injects an MO SMS to the agency's number):
    curl -d '{"from": "989121234567", "to": "404012", "text": "۱۱"}' http://127.0.0.1:2776/mo
  Send a letter to an e-box (it waits as "accepted" until [kartpooshe] base_url names an e-box):
    curl -H "Authorization: Bearer \$(.venv/bin/payam jwt <key id> --secret <secret>)" \\
         -F 'metadata={"recipient":{"kind":"person","id":"0076229645"},"subject":"ابلاغیه","body":"متن"};type=application/json' \\
         -F 'attachment=@letter.pdf;type=application/pdf' http://127.0.0.1:${port}/v1/letters
  Admin API:
    curl -H "Authorization: Bearer \$(cat ${token_file})" http://127.0.0.1:${port}/admin/v1/agencies
  USSD: dial the platform menu from a terminal phone (HTTP front, or over SMPP via the simulator);
  give the agency a *4 code and a menu (docs/USSD.md), then push it an urgent notice:
    PAYAM_CONFIG=config/payam.dev.toml .venv/bin/payam phone '*4#'
    .venv/bin/payam phone '*4#' --sim http://127.0.0.1:2776
    .venv/bin/payam number allocate <agency id> --kind ussd_code --value '*412#'
    curl -H "Authorization: Bearer \$(.venv/bin/payam jwt <key id> --secret <secret>)" \\
         -H 'Content-Type: application/json' -d '{"to": "09121234567", "text": "هشدار"}' \\
         http://127.0.0.1:${port}/v1/ussd/pushes
  App channel (Dowlat Hamrah, docs/APP_CHANNEL.md): register a provider and a key, run its simulator,
  sign a citizen in (the local directory, table citizens, must know their number), send app-first:
    curl -H "Authorization: Bearer \$(cat ${token_file})" -H 'Content-Type: application/json' \\
         -d '{"name": "dowlat-hamrah", "push_url": "http://127.0.0.1:8050/push"}' http://127.0.0.1:${port}/admin/v1/app-providers
    curl -H "Authorization: Bearer \$(cat ${token_file})" -H 'Content-Type: application/json' \\
         -d '{"name": "demo"}' http://127.0.0.1:${port}/admin/v1/app-providers/<provider id>/keys
    .venv/bin/payam app-sim --gateway http://127.0.0.1:${port} --key-id <app_ key id> --secret <secret> --push-secret <push secret> &
    curl -d '{"national_code": "0076229645"}' http://127.0.0.1:8050/control/register
    curl -H "Authorization: Bearer \$(.venv/bin/payam jwt <key id> --secret <secret>)" -H 'Content-Type: application/json' \\
         -d '{"national_code": "0076229645", "text": "قبض شما صادر شد", "channels": ["app", "sms"]}' http://127.0.0.1:${port}/v1/messages

TXT
