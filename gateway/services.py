"""Wiring of the service layer: one place that builds every service from config and store."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.agencies import AgencyService
from gateway.app_channel.providers import ProviderAuthenticator, ProviderService
from gateway.app_channel.service import AppChannel
from gateway.auth import Authenticator
from gateway.batches import BatchService
from gateway.config import Config, ConfigError
from gateway.credentials import CredentialService
from gateway.delivery_window import DeliveryWindow
from gateway.letters.chain import EvidenceChain
from gateway.letters.lifecycle import Lifecycle
from gateway.letters.service import LetterService
from gateway.letters.settings import LetterSettingsService
from gateway.link_policy import LinkPolicy
from gateway.numbering import NumberingPlan, NumberingService
from gateway.operations import OperationsService, OpsState
from gateway.privacy import PrivacyService
from gateway.recipients import CitizenDirectory, LocalDirectory
from gateway.routing import Router
from gateway.sealing import Sealer, SealError
from gateway.send_pipeline import SendPipeline
from gateway.sending import SendingService
from gateway.store import Store
from gateway.store.data_keys import DataKeyStore
from gateway.store.db import Executor, OwnConnection
from gateway.vault import Keyring, Vault
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
    # Administrators' controls and the flags every node follows (gateway/operations.py).
    ops: OperationsService
    letters: LetterService
    letter_settings: LetterSettingsService
    verification: VerificationService
    # Encryption at rest and retention (gateway/vault.py, gateway/privacy.py).
    privacy: PrivacyService
    # The app and portal channel (gateway/app_channel; docs/APP_CHANNEL.md).
    app_channel: AppChannel | None = None
    app_providers: ProviderService | None = None
    app_auth: ProviderAuthenticator | None = None
    # This process's slices of the SLA window (gateway/delivery_window.py, gateway/ops_metrics.py).
    delivery_window: DeliveryWindow = field(default_factory=DeliveryWindow)


def build_services(
    config: Config, store: Store, sealer: Sealer, dsn: str | None = None
) -> Services:
    """``dsn``: the database's URL when ``database.url`` is unset (the embedded server)."""
    if store.vault is None:
        # Data keys are read and created outside any caller's transaction and outside the
        # pool, on connections of their own (OwnConnection says why).
        url = dsn or config.database.url
        if not url:
            raise ConfigError("database.url", "needed for the data keys' own connections")
        try:
            keyring = Keyring.for_platform(sealer, config.privacy.data_kek_files)
        except (OSError, SealError) as exc:  # fail fast, naming the key
            raise ConfigError("privacy.data_kek_files", str(exc)) from None
        own = OwnConnection(url, config.database.command_timeout_seconds)
        store.use_vault(Vault(DataKeyStore(Executor(own)), keyring, sealer))
    assert store.vault is not None
    credentials = CredentialService(store, sealer)
    directory = LocalDirectory(store)
    sending = SendingService(store, config.sms, directory)
    auth = Authenticator(store, credentials, iat_skew_seconds=config.auth.iat_skew_seconds)
    sending.pipeline = SendPipeline(store, auth)
    kp = config.kartpooshe
    chain = EvidenceChain(kp.evidence_key_file, kp.evidence_retired_public_key_files)
    letters = LetterService(store, kp, chain, kp.mail_domain, sending.senders)
    letters.lifecycle = Lifecycle(store, chain, kp, directory)
    sending.links = LinkPolicy(config.links.shorteners)
    verification = VerificationService(
        store, config.verification, sealer.derive_key("payam/verification/v1")
    )
    sending.verification = verification
    app_channel = AppChannel(
        store,
        config.app,
        config.sms,
        sealer.derive_key("payam/app-channel/citizen/v1"),
        sending.accept_with_idempotency,
    )
    sending.app = app_channel
    batches = BatchService(store, sending, directory, config.database.pool_max_size)
    batches.app = app_channel
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
        batches=batches,
        router=Router(config.operators),
        ops=OperationsService(store, config, OpsState(store, config)),
        letters=letters,
        letter_settings=LetterSettingsService(store, kp.default_deemed_days),
        verification=verification,
        privacy=PrivacyService(store, store.vault, config.privacy),
        app_channel=app_channel,
        app_providers=ProviderService(store, sealer),
        app_auth=ProviderAuthenticator(
            store, sealer, iat_skew_seconds=config.auth.iat_skew_seconds
        ),
    )
