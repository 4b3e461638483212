"""Wiring of the service layer: one place that builds every service from config and store."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.agencies import AgencyService
from gateway.auth import Authenticator
from gateway.batches import BatchService
from gateway.config import Config
from gateway.credentials import CredentialService
from gateway.link_policy import LinkPolicy
from gateway.numbering import NumberingPlan, NumberingService
from gateway.recipients import CitizenDirectory, LocalDirectory
from gateway.routing import Router
from gateway.sealing import Sealer
from gateway.send_pipeline import SendPipeline
from gateway.sending import SendingService
from gateway.store import Store
from gateway.verification import VerificationService


@dataclass(frozen=True, slots=True)
class Services:
    config: Config
    store: Store
    sealer: Sealer
    agencies: AgencyService
    credentials: CredentialService
    numbering: NumberingService
    auth: Authenticator
    directory: CitizenDirectory
    sending: SendingService
    batches: BatchService
    router: Router
    verification: VerificationService


def build_services(config: Config, store: Store, sealer: Sealer) -> Services:
    credentials = CredentialService(store, sealer)
    directory = LocalDirectory(store)
    sending = SendingService(store, config.sms, directory)
    auth = Authenticator(store, credentials, iat_skew_seconds=config.auth.iat_skew_seconds)
    sending.pipeline = SendPipeline(store, auth)
    sending.links = LinkPolicy(config.links.shorteners)
    verification = VerificationService(
        store, config.verification, sealer.derive_key("payam/verification/v1")
    )
    sending.verification = verification
    return Services(
        config=config,
        store=store,
        sealer=sealer,
        agencies=AgencyService(store, sealer),
        credentials=credentials,
        numbering=NumberingService(store, NumberingPlan(config.numbering)),
        auth=auth,
        directory=directory,
        sending=sending,
        batches=BatchService(store, sending, directory),
        router=Router(config.operators),
        verification=verification,
    )
