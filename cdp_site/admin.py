"""Admin for accounts, members, access tokens, write keys and the audit log.

Every list is the current account's (chosen with the switcher in the header), permissions
follow the role matrix, and every write goes through the services that audit it.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.text import capfirst
from django.utils.timesince import timesince

from cdp_site import access, accounts, invitations
from cdp_site.access import AccessError
from cdp_site.models import AccessToken, Account, AuditEvent, Membership, Role, WriteKey
from cdp_site.tenancy import Actor, accounts_for_user, actor_for_user, client_ip, session_actor

admin.site.unregister(Group)  # roles replace Django's groups


def request_actor(request: HttpRequest) -> Actor | None:
    return session_actor(request) if request.user.is_authenticated else None


class TitledAdmin(admin.ModelAdmin):
    """Lists are titled with what they hold ("Access tokens"), not "Select … to change"."""

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        title = capfirst(self.model._meta.verbose_name_plural)
        return super().changelist_view(request, {"title": title, **(extra_context or {})})


class AccountScopedAdmin(TitledAdmin):
    """Shows the current account's rows only; add/change/delete follow the role matrix."""

    permission_feature = "admin"
    list_per_page = 50
    show_full_result_count = False  # never COUNT(*) a huge table twice

    def _allowed(self, request: HttpRequest, level: str) -> bool:
        actor = request_actor(request)
        return actor is not None and actor.has(f"{self.permission_feature}.{level}")

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._allowed(request, "view")

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request, "view")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self._allowed(request, "edit")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request, "edit")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revocation and removal go through actions that audit them

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        actor = request_actor(request)
        queryset = super().get_queryset(request)
        if actor is None:
            return queryset.none()
        return queryset.filter(account=actor.account)

    def actor(self, request: HttpRequest) -> Actor:
        actor = request_actor(request)
        assert actor is not None
        return actor


def short_date(value: Any) -> str:
    return formats.date_format(timezone.localtime(value), "M j, Y") if value else "—"


def ago(value: Any) -> str:
    return f"{timesince(value).split(',')[0]} ago" if value else "never"


def masked_html(obj: Any) -> SafeString:
    return format_html('<code class="strata-masked">{}</code>', obj.masked)


def status_html(status: str) -> SafeString:
    return format_html('<span class="strata-status strata-status-{}">{}</span>', status, status)


# What each feature row of the role matrix is called on the token form.
FEATURE_NAMES = {
    "profiles": "profiles", "schema": "schema and streams", "audiences": "audiences",
    "experiences": "experiences", "goals": "goals", "content": "content", "jobs": "jobs",
    "models": "models", "admin": "account administration",
}


def role_summary(role: Role) -> str:
    codes = {permission.code for permission in role.permissions.all()}
    if "admin.edit" in codes:
        return "everything in the account"
    edits = [name for f, name in FEATURE_NAMES.items() if f"{f}.edit" in codes]
    views = [name for f, name in FEATURE_NAMES.items()
             if f"{f}.view" in codes and f"{f}.edit" not in codes]
    parts = ([f"manages {', '.join(edits)}"] if edits else []) + (
        [f"views {', '.join(views)}"] if views else [])
    return "; ".join(parts) or "the dashboard only"


class RoleChoiceField(forms.ModelMultipleChoiceField):
    """Roles as checkboxes, each with a line saying what it allows."""

    widget = forms.CheckboxSelectMultiple(attrs={"class": "radiolist strata-roles"})

    def label_from_instance(self, obj: Role) -> SafeString:
        return format_html('<span class="strata-role-name">{}</span>'
                           '<span class="strata-role-summary">{}</span>',
                           obj.name, role_summary(obj))


def role_choices_for(actor: Actor) -> QuerySet:
    roles = Role.objects.order_by("name").prefetch_related("permissions")
    return roles if actor.is_superuser else roles.filter(code__in=actor.role_codes)


class NetworksField(forms.Field):
    """CIDR networks typed one a line, cleaned to a list."""

    widget = forms.Textarea(attrs={"rows": 2, "cols": 40, "class": "strata-networks"})

    def to_python(self, value: Any) -> list[str]:
        text = "" if value in self.empty_values else str(value)
        try:
            return access.validate_networks(n for n in text.split() if n)
        except AccessError as exc:
            raise forms.ValidationError(exc.message) from None

    def prepare_value(self, value: Any) -> str:
        return "\n".join(value) if isinstance(value, list) else (value or "")


NETWORKS_HELP = "One CIDR network per line, e.g. 10.0.0.0/8. Leave empty to allow any address."


def token_accounts_for(request: HttpRequest) -> QuerySet[Account]:
    """The accounts the signed-in user may mint tokens in: those where they are an Admin."""
    user = request.user
    mintable = [
        account.pk for account in accounts_for_user(user)  # type: ignore[arg-type]
        if (minter := actor_for_user(user, account, None)) is not None  # type: ignore[arg-type]
        and minter.has("admin.edit")
    ]
    return Account.objects.filter(pk__in=mintable).order_by("name")


class AccessTokenCreateForm(forms.Form):
    account = forms.ModelChoiceField(
        queryset=Account.objects.none(), empty_label="Choose the account",
        help_text="The account the token acts in. It may call the API for this account only.",
    )
    description = forms.CharField(
        max_length=200, help_text="What the token is for, so that others know what revoking "
        "it would break.",
        widget=forms.TextInput(attrs={"class": "vTextField",
                                      "placeholder": "e.g. Nightly export to the warehouse"}),
    )
    roles = RoleChoiceField(
        queryset=Role.objects.none(), help_text="A token may carry only roles you hold.",
    )
    expiry = forms.TypedChoiceField(
        choices=AccessToken.EXPIRY_CHOICES, coerce=int, initial=90,
        widget=forms.RadioSelect(attrs={"class": "radiolist inline"}),
    )
    allowed_networks = NetworksField(required=False, help_text=NETWORKS_HELP)

    def __init__(self, *args: Any, actor: Actor, accounts: QuerySet[Account], **kwargs: Any
                 ) -> None:
        super().__init__(*args, **kwargs)
        roles = self.fields["roles"]
        assert isinstance(roles, RoleChoiceField)
        roles.queryset = role_choices_for(actor)
        account = self.fields["account"]
        assert isinstance(account, forms.ModelChoiceField)
        account.queryset = accounts


class AccessTokenChangeForm(forms.ModelForm):
    allowed_networks = NetworksField(required=False, help_text=NETWORKS_HELP)

    class Meta:
        model = AccessToken
        fields = ["description", "enabled", "allowed_networks"]


class TokenStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("active", "Active"), ("disabled", "Disabled"), ("expired", "Expired"),
                ("revoked", "Revoked")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        now = timezone.now()
        live = Q(revoked_at__isnull=True) & (Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        match self.value():
            case "active":
                return queryset.filter(live, enabled=True)
            case "disabled":
                return queryset.filter(live, enabled=False)
            case "expired":
                return queryset.filter(revoked_at__isnull=True, expires_at__lte=now)
            case "revoked":
                return queryset.filter(revoked_at__isnull=False)
        return queryset


@admin.register(AccessToken)
class AccessTokenAdmin(AccountScopedAdmin):
    form = AccessTokenChangeForm
    list_display = [
        "masked", "description", "role_list", "status_badge", "expires", "last_used", "created",
    ]
    list_filter = [TokenStatusFilter]
    search_fields = ["description", "prefix"]
    readonly_fields = [
        "masked", "role_list", "status_badge", "expires_at", "created_by_name", "created_at",
        "last_used_at", "revoked_at",
    ]
    fields = [
        "masked", "description", "role_list", "enabled", "allowed_networks", "status_badge",
        "expires_at", "created_by_name", "created_at", "last_used_at", "revoked_at",
    ]
    actions = ["revoke_tokens"]
    list_select_related = ["created_by"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).prefetch_related("roles")

    @admin.display(description="token")
    def masked(self, obj: AccessToken) -> SafeString:
        return masked_html(obj)

    @admin.display(description="roles")
    def role_list(self, obj: AccessToken) -> str:
        return ", ".join(role.name for role in obj.roles.all()) or "—"

    @admin.display(description="status")
    def status_badge(self, obj: AccessToken) -> SafeString:
        return status_html(obj.status)

    @admin.display(description="expires", ordering="expires_at")
    def expires(self, obj: AccessToken) -> str:
        return short_date(obj.expires_at) if obj.expires_at else "never"

    @admin.display(description="last used", ordering="last_used_at")
    def last_used(self, obj: AccessToken) -> str:
        return ago(obj.last_used_at)

    @admin.display(description="created", ordering="created_at")
    def created(self, obj: AccessToken) -> str:
        by = f" by {obj.created_by.get_username()}" if obj.created_by else ""
        return f"{short_date(obj.created_at)}{by}"

    @admin.display(description="created by")
    def created_by_name(self, obj: AccessToken) -> str:
        return obj.created_by.get_username() if obj.created_by else "—"

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: Any = None) -> HttpResponse:
        # New tokens are minted on their own page; "save and add another" would lead there.
        return super().change_view(request, object_id, form_url, {
            "show_save_and_add_another": False, **(extra_context or {})})

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None
                 ) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        actor = self.actor(request)
        form = AccessTokenCreateForm(request.POST or None, actor=actor,
                                     accounts=token_accounts_for(request))
        if request.method == "POST" and form.is_valid():
            # The account is the one the form names, never implicitly the current one.
            chosen = form.cleaned_data["account"]
            minter = actor_for_user(request.user, chosen, client_ip(request))  # type: ignore[arg-type]
            try:
                if minter is None or not minter.has("admin.edit"):
                    raise AccessError("account_not_allowed", "You cannot create tokens there.")
                new = access.create_access_token(
                    account=chosen, actor=minter,
                    description=form.cleaned_data["description"],
                    roles=form.cleaned_data["roles"],
                    expires_in_days=form.cleaned_data["expiry"] or None,
                    allowed_networks=form.cleaned_data["allowed_networks"],
                )
            except AccessError as exc:
                form.add_error(None, exc.message)
            else:
                # The secret is rendered into this response only; it is never stored.
                return TemplateResponse(request, "admin/cdp_site/secret_created.html", {
                    **self.admin_site.each_context(request),
                    "title": "Access token created",
                    "kind": "access token",
                    "obj": new.obj,
                    "secret": new.secret,
                    "opts": self.model._meta,
                    "list_url": reverse("admin:cdp_site_accesstoken_changelist"),
                })
        return TemplateResponse(request, "admin/cdp_site/secret_form.html", {
            **self.admin_site.each_context(request),
            "title": "New access token",
            "intro": "An access token lets a script or another system call the Strata API in "
                     "the account you choose here. It carries the roles you pick, never more "
                     "than yours. Its secret is shown once, right after you create it.",
            "submit_label": "Create access token",
            "form": form,
            "opts": self.model._meta,
        })

    def save_model(self, request: HttpRequest, obj: AccessToken, form: forms.Form,
                   change: bool) -> None:
        original = AccessToken.objects.get(pk=obj.pk)
        values = {name: form.cleaned_data[name] for name in form.changed_data}
        obj.description, obj.enabled = original.description, original.enabled
        obj.allowed_networks = original.allowed_networks
        try:
            access.update_access_token(obj, actor=self.actor(request), **values)
        except AccessError as exc:
            self.message_user(request, exc.message, messages.ERROR)

    @admin.action(description="Revoke selected tokens")
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet) -> None:
        if not self._allowed(request, "delete"):
            self.message_user(request, "Your roles do not allow revoking.", messages.ERROR)
            return
        for token in queryset:
            access.revoke_access_token(token, actor=self.actor(request))
        self.message_user(request, f"Revoked {len(queryset)} token(s).", messages.SUCCESS)


class WriteKeyCreateForm(forms.Form):
    name = forms.CharField(max_length=200)
    stream = forms.SlugField(max_length=100, initial="default")


@admin.register(WriteKey)
class WriteKeyAdmin(AccountScopedAdmin):
    list_display = ["masked", "name", "stream", "status_badge", "last_used", "created"]
    readonly_fields = ("masked", "name", "stream", "status_badge", "created_by_name",
                       "created_at", "last_used_at", "revoked_at")
    fields = readonly_fields
    actions = ["revoke_keys"]
    list_select_related = ["created_by"]

    @admin.display(description="write key")
    def masked(self, obj: WriteKey) -> SafeString:
        return masked_html(obj)

    @admin.display(description="status")
    def status_badge(self, obj: WriteKey) -> SafeString:
        if obj.is_revoked:
            return status_html("revoked")
        return status_html("active" if obj.enabled else "disabled")

    @admin.display(description="last used", ordering="last_used_at")
    def last_used(self, obj: WriteKey) -> str:
        return ago(obj.last_used_at)

    @admin.display(description="created", ordering="created_at")
    def created(self, obj: WriteKey) -> str:
        by = f" by {obj.created_by.get_username()}" if obj.created_by else ""
        return f"{short_date(obj.created_at)}{by}"

    @admin.display(description="created by")
    def created_by_name(self, obj: WriteKey) -> str:
        return obj.created_by.get_username() if obj.created_by else "—"

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None
                 ) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        actor = self.actor(request)
        form = WriteKeyCreateForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            new = access.create_write_key(account=actor.account, actor=actor, **form.cleaned_data)
            return TemplateResponse(request, "admin/cdp_site/secret_created.html", {
                **self.admin_site.each_context(request),
                "title": "Write key created", "kind": "write key", "obj": new.obj,
                "secret": new.secret, "opts": self.model._meta,
                "list_url": reverse("admin:cdp_site_writekey_changelist"),
            })
        return TemplateResponse(request, "admin/cdp_site/secret_form.html", {
            **self.admin_site.each_context(request),
            "title": "New write key", "form": form, "opts": self.model._meta,
            "intro": "A write key lets a website, app or server send events to "
                     f"{actor.account.name} and ask for decisions; it can do nothing else. "
                     "Its secret is shown once, right after you create it.",
            "submit_label": "Create write key",
        })

    @admin.action(description="Revoke selected write keys")
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet) -> None:
        if not self._allowed(request, "delete"):
            self.message_user(request, "Your roles do not allow revoking.", messages.ERROR)
            return
        for key in queryset:
            access.revoke_write_key(key, actor=self.actor(request))
        self.message_user(request, f"Revoked {len(queryset)} write key(s).", messages.SUCCESS)


class MembershipAddForm(forms.Form):
    email = forms.EmailField(max_length=254, help_text="They get an email with a link to join "
                             "(signing in if they already use Strata, else choosing a password).")
    roles = RoleChoiceField(queryset=Role.objects.order_by("name").prefetch_related("permissions"))


class MembershipChangeForm(forms.ModelForm):
    roles = RoleChoiceField(
        queryset=Role.objects.order_by("name").prefetch_related("permissions"), required=False,
    )

    class Meta:
        model = Membership
        fields = ["roles"]


@admin.register(Membership)
class MembershipAdmin(AccountScopedAdmin):
    form = MembershipChangeForm
    list_display = ["user", "email", "role_list", "created_at"]
    search_fields = ["user__username", "user__email"]
    readonly_fields = ["user", "created_at"]
    fields = ["user", "roles", "created_at"]
    actions = ["remove_members"]
    list_select_related = ["user"]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).prefetch_related("roles")

    @admin.display(description="email")
    def email(self, obj: Membership) -> str:
        return obj.user.email

    @admin.display(description="roles")
    def role_list(self, obj: Membership) -> str:
        return ", ".join(role.name for role in obj.roles.all()) or "—"

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None
                 ) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        actor = self.actor(request)
        form = MembershipAddForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            # The same answer whether or not the address has a user anywhere (#18 finding 6).
            invitations.invite(account=actor.account, actor=actor,
                               email=form.cleaned_data["email"], roles=form.cleaned_data["roles"])
            self.message_user(request, f"Invited {form.cleaned_data['email']}: they join "
                              "through the link in the email.", messages.SUCCESS)
            return HttpResponseRedirect(reverse("admin:cdp_site_membership_changelist"))
        return TemplateResponse(request, "admin/cdp_site/secret_form.html", {
            **self.admin_site.each_context(request),
            "title": "Invite a member", "form": form, "opts": self.model._meta,
            "intro": f"Give someone access to {actor.account.name}. Their roles decide what "
                     "they may see and do here.",
            "submit_label": "Send invitation",
        })

    def save_model(self, request: HttpRequest, obj: Membership, form: forms.ModelForm[Membership],
                   change: bool) -> None:
        pass  # roles are saved in save_related through the audited service

    def save_related(self, request: HttpRequest, form: forms.ModelForm[Membership],
                     formsets: Any,
                     change: bool) -> None:
        accounts.set_member_roles(form.instance, actor=self.actor(request),
                                  roles=form.cleaned_data["roles"])

    @admin.action(description="Remove selected members from this account")
    def remove_members(self, request: HttpRequest, queryset: QuerySet) -> None:
        if not self._allowed(request, "delete"):
            self.message_user(request, "Your roles do not allow removing.", messages.ERROR)
            return
        count = 0
        for membership in queryset:
            if membership.user_id == request.user.pk:
                self.message_user(request, "You cannot remove yourself.", messages.WARNING)
                continue
            accounts.remove_member(membership, actor=self.actor(request))
            count += 1
        self.message_user(request, f"Removed {count} member(s).", messages.SUCCESS)


@admin.register(Account)
class AccountAdmin(TitledAdmin):
    """Admins see and edit their current account (not its enabling or quota); the site operator
    (a superuser) sees, creates and edits all."""

    list_display = ["name", "slug", "aid", "enabled", "retention_days", "monthly_event_quota"]
    readonly_fields = ["aid", "created_at"]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        head = ["slug"] if obj is None else ["aid", "slug"]
        return (*head, *Account.SETTINGS_FIELDS, "created_at")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fixed = ["aid", "slug", "created_at"] if obj is not None else ["created_at"]
        actor = request_actor(request)
        if actor is None or not actor.is_site_operator:
            return [*fixed, *Account.OPERATOR_FIELDS]  # enabling and quotas: the operator's
        return fixed

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        actor = request_actor(request)
        queryset = super().get_queryset(request)
        if actor is None:
            return queryset.none()
        return queryset if actor.is_superuser else queryset.filter(pk=actor.account.pk)

    def _allowed(self, request: HttpRequest, level: str) -> bool:
        actor = request_actor(request)
        return actor is not None and actor.has(f"admin.{level}")

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._allowed(request, "view")

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request, "view")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request, "edit")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_superuser)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: Account, form: forms.Form,
                   change: bool) -> None:
        if not change:
            created = accounts.create_account(
                name=obj.name, slug=obj.slug, actor=request_actor(request),
                **{name: getattr(obj, name) for name in Account.SETTINGS_FIELDS if name != "name"},
            )
            obj.pk, obj.aid, obj.created_at = created.pk, created.aid, created.created_at
            return
        original = Account.objects.get(pk=obj.pk)
        values = {name: form.cleaned_data[name] for name in form.changed_data
                  if name in Account.SETTINGS_FIELDS}
        actor = request_actor(request)
        if actor is None:  # has_change_permission let no one else this far
            raise PermissionDenied
        accounts.update_account_settings(original, actor=actor, **values)


@admin.register(AuditEvent)
class AuditEventAdmin(AccountScopedAdmin):
    list_display = ["when", "who", "action", "what", "details", "ip_address"]
    list_display_links = ["when"]
    list_filter = ["action"]
    search_fields = ["actor_label", "target_label"]
    date_hierarchy = None
    readonly_fields = ("created_at", "actor_label", "action", "target_type", "target_id",
                       "target_label", "changes", "ip_address")
    fields = readonly_fields

    @admin.display(description="when", ordering="created_at")
    def when(self, obj: AuditEvent) -> str:
        return formats.date_format(timezone.localtime(obj.created_at), "M j, Y, H:i")

    @admin.display(description="who", ordering="actor_label")
    def who(self, obj: AuditEvent) -> str:
        return obj.actor_label

    @admin.display(description="target")
    def what(self, obj: AuditEvent) -> str:
        return obj.target_label

    @admin.display(description="details")
    def details(self, obj: AuditEvent) -> str:
        parts = []
        for name, value in (obj.changes or {}).items():
            if isinstance(value, list) and len(value) == 2 and name != "allowed_networks":
                text = f"{_plain(value[0])} → {_plain(value[1])}"
            else:
                text = _plain(value)
            parts.append(f"{name.replace('_', ' ')}: {text}")
        summary = "; ".join(parts)
        return summary if len(summary) <= 120 else summary[:119] + "…"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _plain(value: Any) -> str:
    if value in (None, "", []):
        return "—"
    if isinstance(value, list):
        return ", ".join(_plain(item) for item in value)
    return str(value)


@admin.register(Role)
class RoleAdmin(TitledAdmin):
    """The role matrix, read-only: it is seeded from ROLES.md by a migration."""

    list_display = ["name", "abbreviation", "allows", "permission_list"]
    fields = ("name", "abbreviation", "description", "allows", "permission_list")
    readonly_fields = fields

    @admin.display(description="allows")
    def allows(self, obj: Role) -> str:
        return capfirst(role_summary(obj))

    @admin.display(description="permissions")
    def permission_list(self, obj: Role) -> str:
        return ", ".join(p.code for p in obj.permissions.all())

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).prefetch_related("permissions")

    def has_module_permission(self, request: HttpRequest) -> bool:
        actor = request_actor(request)
        return actor is not None and actor.has("admin.view")

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
