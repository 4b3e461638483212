"""The closed catalogue of API errors, rendered as RFC 9457 ``application/problem+json``.

Each error has a stable machine ``code`` that integrators may switch on; ``title`` is English and
``title_fa`` Persian. The ``detail`` names the field or value at fault, never a secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPE_BASE = "https://payam.gov.ir/problems/"


@dataclass(frozen=True, slots=True)
class ErrorKind:
    status: int
    title: str
    title_fa: str


CATALOGUE: dict[str, ErrorKind] = {
    # Request shape
    "malformed_json": ErrorKind(400, "The body is not valid JSON", "بدنه درخواست JSON معتبر نیست"),
    "unsupported_media_type": ErrorKind(
        415, "Send the body as application/json", "بدنه را با نوع application/json بفرستید"
    ),
    "body_too_large": ErrorKind(
        413, "The request body is too large", "بدنه درخواست بیش از حد بزرگ است"
    ),
    "unknown_field": ErrorKind(
        422, "The body has a field this route does not take", "فیلد ناشناخته"
    ),
    "missing_field": ErrorKind(422, "A required field is missing", "فیلد لازم وجود ندارد"),
    "wrong_type": ErrorKind(422, "A field has the wrong type", "نوع فیلد نادرست است"),
    "invalid_value": ErrorKind(422, "A field has an invalid value", "مقدار فیلد نامعتبر است"),
    "invalid_parameter": ErrorKind(
        400, "A query parameter is invalid", "یک پارامتر پرس‌وجو نامعتبر است"
    ),
    "not_found": ErrorKind(404, "No such resource", "چنین منبعی وجود ندارد"),
    "method_not_allowed": ErrorKind(405, "Method not allowed here", "این روش در اینجا مجاز نیست"),
    "internal_error": ErrorKind(500, "Internal error", "خطای داخلی"),
    "request_timeout": ErrorKind(
        408, "The request body did not arrive in time", "بدنه درخواست به موقع نرسید"
    ),
    "rate_limited": ErrorKind(
        429, "Too many requests for this key; retry after Retry-After", "درخواست‌ها بیش از حد مجاز"
    ),
    "service_unavailable": ErrorKind(
        503, "Temporarily unavailable; nothing was stored, retry", "موقتاً در دسترس نیست"
    ),
    # Authentication and authorisation
    "missing_token": ErrorKind(
        401, "Authorization: Bearer token required", "توکن احراز هویت لازم است"
    ),
    "malformed_token": ErrorKind(401, "The token is not a valid JWT", "توکن، JWT معتبر نیست"),
    "unsupported_algorithm": ErrorKind(
        401, "Only HS256 tokens are accepted", "فقط توکن HS256 پذیرفته است"
    ),
    "missing_claim": ErrorKind(
        401, "The token lacks iss, iat or jti", "توکن فاقد iss، iat یا jti است"
    ),
    "unknown_key": ErrorKind(401, "Unknown API key", "کلید ناشناخته است"),
    "bad_signature": ErrorKind(401, "The token signature is invalid", "امضای توکن نامعتبر است"),
    "token_expired": ErrorKind(401, "The token iat is too old", "زمان صدور توکن گذشته است"),
    "token_from_future": ErrorKind(
        401, "The token iat is in the future", "زمان صدور توکن در آینده است"
    ),
    "token_replayed": ErrorKind(
        401, "This token (jti) was already used", "این توکن قبلاً استفاده شده است"
    ),
    "key_revoked": ErrorKind(401, "The API key is revoked", "کلید باطل شده است"),
    "agency_suspended": ErrorKind(403, "The agency is suspended", "دستگاه تعلیق شده است"),
    "unknown_admin_token": ErrorKind(401, "Unknown admin token", "توکن مدیریتی ناشناخته است"),
    "admin_token_revoked": ErrorKind(
        401, "The admin token is revoked", "توکن مدیریتی باطل شده است"
    ),
    "agency_key_on_admin_route": ErrorKind(
        403,
        "Agency credentials cannot call admin routes",
        "کلید دستگاه به مسیرهای مدیریتی دسترسی ندارد",
    ),
    "admin_token_on_agency_route": ErrorKind(
        403, "Admin tokens cannot call agency routes", "توکن مدیریتی برای مسیرهای دستگاه نیست"
    ),
    "insufficient_role": ErrorKind(
        403, "This action needs the admin role", "این کار نقش مدیر لازم دارد"
    ),
    # Agencies
    "invalid_legal_id": ErrorKind(
        422, "The legal-entity national ID fails its checksum", "شناسه ملی نامعتبر است"
    ),
    "legal_id_taken": ErrorKind(
        409, "An agency with this legal-entity ID exists", "دستگاهی با این شناسه ملی وجود دارد"
    ),
    "agency_not_active": ErrorKind(409, "The agency is suspended", "دستگاه تعلیق شده است"),
    # Numbering plan
    "invalid_shortcode": ErrorKind(422, "Not a valid 4040 shortcode", "شماره ۴۰۴۰ نامعتبر است"),
    "invalid_sub_number": ErrorKind(
        422, "Not a sub-number inside the agency's block", "زیرشماره در بازه شماره دستگاه نیست"
    ),
    "invalid_ussd_code": ErrorKind(422, "Not a valid *4 USSD code", "کد USSD نامعتبر است"),
    "number_taken": ErrorKind(409, "Already allocated", "قبلاً تخصیص یافته است"),
    "number_prefix_clash": ErrorKind(
        409,
        "Clashes by prefix with another agency's allocation",
        "با پیشوند شماره دستگاه دیگری تداخل دارد",
    ),
    "number_quarantined": ErrorKind(
        409, "Released recently and still in quarantine", "به‌تازگی آزاد شده و در قرنطینه است"
    ),
    "number_reserved": ErrorKind(409, "Reserved by the platform", "رزرو سامانه است"),
    "numbering_exhausted": ErrorKind(
        409, "No free value of that length", "مقدار آزادی با این طول نیست"
    ),
    "allocation_released": ErrorKind(409, "Already released", "قبلاً آزاد شده است"),
    # Sending
    "invalid_recipient": ErrorKind(
        422, "Not an Iranian mobile number", "شماره همراه ایرانی معتبر نیست"
    ),
    "unknown_national_code": ErrorKind(
        422, "No mobile number is known for this national code", "شماره‌ای برای این کد ملی ثبت نیست"
    ),
    "sender_not_registered": ErrorKind(
        422,
        "The sender is not one of the agency's numbers or masks",
        "فرستنده متعلق به دستگاه نیست",
    ),
    "no_sender": ErrorKind(
        409, "The agency holds no sender yet", "دستگاه هنوز شماره فرستنده ندارد"
    ),
    "message_too_long": ErrorKind(422, "The message is too long", "متن پیام بیش از حد بلند است"),
    "quiet_hours": ErrorKind(
        422, "Bulk messages are not sent in quiet hours", "پیام انبوه در ساعات سکوت ارسال نمی‌شود"
    ),
    "daily_quota_exceeded": ErrorKind(
        429, "The daily SMS fragment quota is used up", "سهمیه روزانه پیامک تمام شده است"
    ),
    "recipient_opted_out": ErrorKind(
        422, "The recipient opted out of this agency's messages", "گیرنده لغو عضویت کرده است"
    ),
    "duplicate_message": ErrorKind(
        409, "The same text went to this recipient recently", "همین متن به‌تازگی ارسال شده است"
    ),
    "mandatory_not_allowed": ErrorKind(
        403, "This agency may not send mandatory messages", "دستگاه مجاز به پیام الزامی نیست"
    ),
    "idempotency_key_reused": ErrorKind(
        409,
        "This Idempotency-Key was used with another body",
        "کلید یکتایی با بدنه دیگری استفاده شده",
    ),
    "invalid_idempotency_key": ErrorKind(
        400, "The Idempotency-Key header is invalid", "سرآیند Idempotency-Key نامعتبر است"
    ),
    "batch_cancelled": ErrorKind(
        409, "The batch was cancelled and cannot be re-sent", "دسته لغو شده و ارسال دوباره ندارد"
    ),
    "not_cancellable": ErrorKind(
        409, "The message can no longer be cancelled", "پیام دیگر قابل لغو نیست"
    ),
    "missing_param": ErrorKind(
        422, "A template placeholder has no value", "مقدار یکی از جای‌نگهدارها داده نشده است"
    ),
    "batch_too_large": ErrorKind(
        413, "Too many recipients in one batch", "تعداد گیرندگان بیش از حد است"
    ),
    # Link policy (gateway/link_policy.py): links only to the agency's registered domains
    "link_domain_not_registered": ErrorKind(
        422,
        "A link points to a domain the agency has not registered",
        "پیوند به دامنه‌ای است که برای دستگاه ثبت نشده است",
    ),
    "link_lookalike_domain": ErrorKind(
        422,
        "A link points to a look-alike of a registered domain",
        "پیوند به دامنه‌ای شبیه دامنه ثبت‌شده (جعلی) است",
    ),
    "link_shortener": ErrorKind(
        422, "Links through URL shorteners are not allowed", "پیوند کوتاه‌شده مجاز نیست"
    ),
    "link_ip_address": ErrorKind(
        422, "Links to raw IP addresses are not allowed", "پیوند به نشانی IP مجاز نیست"
    ),
    "link_userinfo": ErrorKind(
        422,
        "A link hides its real host behind a name and '@'",
        "پیوند، میزبان واقعی را پشت نام و @ پنهان کرده است",
    ),
    "link_invalid_host": ErrorKind(
        422, "A link's host is not a valid domain name", "میزبان پیوند نام دامنه معتبر نیست"
    ),
    "link_in_notice": ErrorKind(
        422, "A letter notice may not carry a link", "اعلان نامه نباید پیوند داشته باشد"
    ),
    # Verification (gateway/verification.py)
    "verification_off": ErrorKind(
        422,
        "This agency's messages do not carry verification codes",
        "پیام‌های این دستگاه کد تأیید ندارند",
    ),
    "verification_rate_limited": ErrorKind(
        429,
        "Too many verification attempts for this number; try again in an hour",
        "تعداد درخواست‌های بررسی این شماره بیش از حد مجاز است",
    ),
    # USSD
    "invalid_ussd_menu": ErrorKind(
        422, "The USSD menu definition is invalid; see errors", "تعریف منوی USSD نادرست است"
    ),
    "ussd_unauthorised": ErrorKind(
        401, "Unknown USSD operator or wrong shared secret", "اپراتور USSD یا رمز مشترک نادرست است"
    ),
    "no_ussd_code": ErrorKind(
        409, "The agency holds no *4 USSD code to push from", "دستگاه کد USSD ندارد"
    ),
    "mask_empty": ErrorKind(422, "The mask is empty", "نام فرستنده خالی است"),
    "mask_too_long": ErrorKind(422, "The mask is too long", "نام فرستنده بیش از حد بلند است"),
    "mask_invalid_character": ErrorKind(
        422, "The mask has a character SMS senders cannot carry", "نام فرستنده نویسه نامجاز دارد"
    ),
    "mask_confusable_character": ErrorKind(
        422, "The mask has a look-alike non-Latin character", "نام فرستنده نویسه فریبنده دارد"
    ),
    "mask_needs_letter": ErrorKind(
        422, "A mask needs at least one letter", "نام فرستنده باید دست‌کم یک حرف داشته باشد"
    ),
    "mask_reserved": ErrorKind(409, "The mask is reserved", "نام فرستنده رزرو است"),
    "mask_lookalike": ErrorKind(
        409, "The mask looks like another agency's mask", "نام فرستنده شبیه نام دستگاه دیگری است"
    ),
    # Letters (Kartpooshe e-box; docs/KARTPOOSHE.md, docs/KARTPOOSHE_PROTOCOL.md)
    "invalid_letter_recipient": ErrorKind(
        422,
        "Not a valid national code (person) or legal-entity ID (company)",
        "کد ملی یا شناسه ملی گیرنده نامعتبر است",
    ),
    "malformed_multipart": ErrorKind(
        400, "Send multipart/form-data with a JSON 'metadata' part", "بدنه چندبخشی نادرست است"
    ),
    "invalid_attachment": ErrorKind(422, "An attachment is invalid", "پیوست نامعتبر است"),
    "unsupported_attachment": ErrorKind(
        422, "Only PDF and image attachments are accepted", "فقط پیوست PDF و تصویر پذیرفته است"
    ),
    "attachment_too_large": ErrorKind(
        413, "The attachments are too large", "حجم پیوست‌ها بیش از حد مجاز است"
    ),
    "too_many_attachments": ErrorKind(
        422, "Too many attachments", "تعداد پیوست‌ها بیش از حد مجاز است"
    ),
    "invalid_tracking_number": ErrorKind(
        422,
        "Not a tracking number (mistyped: the check digit does not match)",
        "شماره پیگیری نامعتبر است (رقم کنترل نادرست)",
    ),
    "smtp_username_taken": ErrorKind(
        409, "This SMTP username is taken", "این نام کاربری SMTP قبلاً گرفته شده است"
    ),
    "unauthorised": ErrorKind(
        401, "Wrong or missing e-box token", "توکن کارپوشه نادرست است یا داده نشده"
    ),
    "unknown_letter": ErrorKind(404, "No such letter", "چنین نامه‌ای وجود ندارد"),
    "invalid_event": ErrorKind(422, "The event is invalid", "رویداد نامعتبر است"),
    "reply_not_allowed": ErrorKind(
        422, "This letter does not take replies", "این نامه پاسخ نمی‌پذیرد"
    ),
    "invalid_national_code": ErrorKind(422, "Not a valid national code", "کد ملی نامعتبر است"),
    "unknown_citizen": ErrorKind(
        404,
        "The directory holds no mobile number for this citizen",
        "شماره همراهی برای این شخص ثبت نیست",
    ),
    "too_many_codes": ErrorKind(
        429, "Too many one-time codes for this person; try later", "درخواست کد بیش از حد مجاز است"
    ),
    # The app and portal channel (docs/APP_CHANNEL.md)
    "agency_key_on_app_route": ErrorKind(
        401,
        "App routes take an app provider's key, not an agency's",
        "این مسیر کلید ارائه‌دهنده برنامک می‌خواهد، نه کلید دستگاه",
    ),
    "provider_suspended": ErrorKind(
        403, "The app provider is suspended", "ارائه‌دهنده برنامک تعلیق شده است"
    ),
    "scope_not_granted": ErrorKind(
        403, "The app provider lacks this scope", "این دسترسی به ارائه‌دهنده داده نشده است"
    ),
    "provider_name_taken": ErrorKind(
        409, "An app provider has this name", "ارائه‌دهنده‌ای با این نام وجود دارد"
    ),
    "not_registered_here": ErrorKind(
        404,
        "The citizen is not signed in on this provider's app",
        "این شخص در برنامک این ارائه‌دهنده ثبت نام نکرده است",
    ),
    "app_not_registered": ErrorKind(
        409,
        "The citizen uses no app that may carry this agency's notices; add sms to channels",
        "این شخص در هیچ برنامکی ثبت نیست؛ کانال پیامک را هم بیفزایید",
    ),
    "app_needs_national_code": ErrorKind(
        422,
        "The app channel needs the recipient's national code",
        "کانال برنامک به کد ملی گیرنده نیاز دارد",
    ),
    "unknown_notice": ErrorKind(404, "No such notice for this citizen", "چنین اعلانی وجود ندارد"),
}


class Problem(Exception):
    """An error to answer with problem+json. ``code`` must be in CATALOGUE."""

    def __init__(self, code: str, detail: str = "", **extra: Any) -> None:
        if code not in CATALOGUE:
            raise KeyError(f"unknown problem code {code!r}")
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail
        self.extra = extra

    @property
    def status(self) -> int:
        return CATALOGUE[self.code].status

    def body(self, instance: str = "") -> dict[str, Any]:
        kind = CATALOGUE[self.code]
        body: dict[str, Any] = {
            "type": TYPE_BASE + self.code,
            "title": kind.title,
            "title_fa": kind.title_fa,
            "status": kind.status,
            "code": self.code,
        }
        if self.detail:
            body["detail"] = self.detail
        if instance:
            body["instance"] = instance
        body.update(self.extra)
        return body
