"""Routes of the app and portal channel (docs/APP_CHANNEL.md).

Operators (admin token): ``/admin/v1/app-providers...``. Providers (their own JWT):
``/app/v1/...``. National codes travel only in request bodies, never in URLs, so they stay out
of access logs and proxies' records.
"""

from __future__ import annotations

import uuid

from aiohttp import web

from gateway.api.http import admin_auth, client_addr, json_response, read_json, services
from gateway.app_channel.providers import (
    ProviderPrincipal,
    ProviderService,
    provider_key_view,
    provider_view,
)
from gateway.app_channel.service import AppChannel
from gateway.errors import Problem
from gateway.store.app_channel import AppChannelStore


def _providers(request: web.Request) -> ProviderService:
    svc = services(request).app_providers
    if svc is None:
        raise Problem("not_found", "the app channel is not enabled")
    return svc


def _channel(request: web.Request) -> AppChannel:
    channel = services(request).app_channel
    if channel is None:
        raise Problem("not_found", "the app channel is not enabled")
    return channel


def _provider_id(request: web.Request) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info["provider_id"])
    except ValueError:
        raise Problem("not_found", "no such app provider") from None


async def _provider_auth(request: web.Request) -> ProviderPrincipal:
    auth = services(request).app_auth
    if auth is None:
        raise Problem("not_found", "the app channel is not enabled")
    return await auth.provider(request.headers.get("Authorization"), client_addr(request))


async def _optional_json(request: web.Request) -> object:
    return await read_json(request) if request.can_read_body else {}


# -- operators ------------------------------------------------------------------------------
async def create_provider(request: web.Request) -> web.Response:
    """POST /admin/v1/app-providers: the push secret is shown only here."""
    admin = await admin_auth(request, write=True)
    provider, secret = await _providers(request).create(
        await read_json(request), actor=admin.actor, client_addr=client_addr(request)
    )
    return json_response({"provider": provider_view(provider), "push_secret": secret}, 201)


async def list_providers(request: web.Request) -> web.Response:
    await admin_auth(request, write=False)
    _providers(request)
    rows = await AppChannelStore(services(request).store.db).list_providers()
    return json_response({"providers": [provider_view(p) for p in rows]})


async def get_provider(request: web.Request) -> web.Response:
    await admin_auth(request, write=False)
    provider = await _providers(request).get(_provider_id(request))
    return json_response(provider_view(provider))


async def update_provider(request: web.Request) -> web.Response:
    """PATCH /admin/v1/app-providers/{id}: push_url, scopes, agencies, status."""
    admin = await admin_auth(request, write=True)
    provider = await _providers(request).update(
        _provider_id(request),
        await read_json(request),
        actor=admin.actor,
        client_addr=client_addr(request),
    )
    return json_response(provider_view(provider))


async def create_key(request: web.Request) -> web.Response:
    """POST /admin/v1/app-providers/{id}/keys: the secret is shown only here."""
    admin = await admin_auth(request, write=True)
    key, secret = await _providers(request).create_key(
        _provider_id(request),
        await read_json(request),
        actor=admin.actor,
        client_addr=client_addr(request),
    )
    return json_response({"key": provider_key_view(key), "secret": secret}, 201)


async def list_keys(request: web.Request) -> web.Response:
    await admin_auth(request, write=False)
    keys = await _providers(request).keys(_provider_id(request))
    return json_response({"keys": [provider_key_view(k) for k in keys]})


async def revoke_key(request: web.Request) -> web.Response:
    admin = await admin_auth(request, write=True)
    key = await _providers(request).revoke_key(
        _provider_id(request),
        request.match_info["key_id"],
        actor=admin.actor,
        client_addr=client_addr(request),
    )
    return json_response(provider_key_view(key))


# -- providers ------------------------------------------------------------------------------
async def register_citizen(request: web.Request) -> web.Response:
    """POST /app/v1/registrations: the citizen signed in on the provider's app."""
    who = await _provider_auth(request)
    return json_response(await _channel(request).register(who, await read_json(request)))


async def sign_out_citizen(request: web.Request) -> web.Response:
    """POST /app/v1/registrations/sign-out: the citizen signed out; no more pushes."""
    who = await _provider_auth(request)
    return json_response(await _channel(request).sign_out(who, await read_json(request)))


async def inbox(request: web.Request) -> web.Response:
    """POST /app/v1/inbox: a page of the citizen's notices (cursor pagination)."""
    who = await _provider_auth(request)
    return json_response(await _channel(request).inbox(who, await read_json(request)))


async def notice_delivered(request: web.Request) -> web.Response:
    """POST /app/v1/notices/{message_id}/delivered: the provider's delivery receipt."""
    who = await _provider_auth(request)
    body = await read_json(request)
    return json_response(
        await _channel(request).delivered(who, request.match_info["message_id"], body)
    )


async def read_notice(request: web.Request) -> web.Response:
    """POST /app/v1/notices/{message_id}/read: the read receipt."""
    who = await _provider_auth(request)
    body = await read_json(request)
    return json_response(await _channel(request).read(who, request.match_info["message_id"], body))


async def reply(request: web.Request) -> web.Response:
    """POST /app/v1/replies: the citizen's answer to a notice, for the agency."""
    who = await _provider_auth(request)
    return json_response(await _channel(request).reply(who, await read_json(request)), 201)


def register(app: web.Application) -> None:
    app.router.add_post("/admin/v1/app-providers", create_provider)
    app.router.add_get("/admin/v1/app-providers", list_providers)
    app.router.add_get("/admin/v1/app-providers/{provider_id}", get_provider)
    app.router.add_patch("/admin/v1/app-providers/{provider_id}", update_provider)
    app.router.add_post("/admin/v1/app-providers/{provider_id}/keys", create_key)
    app.router.add_get("/admin/v1/app-providers/{provider_id}/keys", list_keys)
    app.router.add_post("/admin/v1/app-providers/{provider_id}/keys/{key_id}/revoke", revoke_key)
    app.router.add_post("/app/v1/registrations", register_citizen)
    app.router.add_post("/app/v1/registrations/sign-out", sign_out_citizen)
    app.router.add_post("/app/v1/inbox", inbox)
    app.router.add_post("/app/v1/notices/{message_id}/delivered", notice_delivered)
    app.router.add_post("/app/v1/notices/{message_id}/read", read_notice)
    app.router.add_post("/app/v1/replies", reply)
