"""Telling people a job is in trouble: when it fails, or errs five times in a row, the
account's alert webhook (Slack-compatible ``{"text": ...}``, signed like every outbound call)
and the account's Admins by email. An alert that cannot be sent is logged, never raised: the
job's own state is what matters."""

from __future__ import annotations

import json
import logging
import uuid

from django.conf import settings
from django.core.mail import send_mail

from cdp_site.models import Membership
from connectors import outbound
from connectors.errors import ConnectorError
from connectors.models import ConnectorSettings, Job

logger = logging.getLogger(__name__)
ERRORS_IN_A_ROW = 5


def admin_emails(account_id: int) -> list[str]:
    return sorted({email for email in Membership.objects.filter(
        account_id=account_id, roles__code="admin").values_list("user__email", flat=True)
        if email})


def job_alert(job: Job, message: str) -> None:
    text = f"Strata job “{job.name}” ({job.kind}) {message}"
    link = f"{settings.STRATA_PUBLIC_URL}/connectors/jobs/{job.pk}/"
    url = ConnectorSettings.objects.filter(account_id=job.account_id).values_list(
        "alert_webhook_url", flat=True).first()
    if url:
        body = json.dumps({"text": f"{text}\n{link}"}).encode()
        try:
            outbound.check_status(outbound.request(
                job.account_id, "POST", url, body=body, timeout=10.0,
                headers={"Content-Type": "application/json",
                         "webhook-id": f"alert_{uuid.uuid4().hex}"}))
        except ConnectorError as exc:
            logger.warning("job alert webhook failed: %s", exc.message)
    recipients = admin_emails(job.account_id)
    if recipients:
        send_mail(subject=f"[Strata] job {job.name}: {message[:120]}",
                  message=f"{text}\n\n{link}\n", from_email=None,
                  recipient_list=recipients, fail_silently=True)
