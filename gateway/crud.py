"""List, create, edit and delete pages for a model, scoped by ``gateway.scoping``.

Each app declares its pages as ``Crud(...)`` objects; the views and templates are shared so that
every list looks and behaves alike (and asks the same scoped querysets as the API).
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import FieldDoesNotExist, PermissionDenied, ValidationError
from django.db.models import ProtectedError
from django.shortcuts import redirect
from django.urls import path, reverse
from django.views import generic

from gateway import liveness
from gateway.forms import add_refusal


@dataclass(frozen=True)
class Crud:
    """The pages of one model: ``<name>-list``, ``-create``, ``-update`` and ``-delete``, named in
    the namespace of the model's app (``hosts:host-list``)."""

    model: type
    form_class: type
    columns: tuple[str, ...]
    create_form_class: type | None = None
    owner_only: bool = True
    select_related: tuple[str, ...] = ()
    prefetch_related: tuple[str, ...] = ()
    empty_hint: str = ""
    row_links: tuple[tuple[str, str], ...] = ()  # (label, URL name taking the row's pk)
    # Beside "Save" on the edit page: (label, URL name taking the row's pk).
    form_links: tuple[tuple[str, str], ...] = ()
    # Buttons under the edit form, each POSTing to (label, URL name taking the row's pk).
    form_posts: tuple[tuple[str, str], ...] = ()
    # The app's own list.html and form.html (extending the crud/ ones) are looked up here first.
    template_dir: str = "crud"
    # What deleting a row does to other rows, as sentences for the confirmation page.
    delete_effects: Callable[[object], list[str]] | None = None
    # Deletes a row where more than the row must go (a key in Mailgate's keyring too).
    delete_service: Callable[[object], None] | None = None
    extra_context: dict = field(default_factory=dict)
    # A "live" column: whether each row's last change is on the hosts (gateway.liveness).
    liveness: bool = False

    @property
    def name(self) -> str:
        return self.model._meta.model_name

    def urls(self, prefix: str) -> list:
        options = {"crud": self}
        return [
            path(f"{prefix}/", CrudList.as_view(**options), name=f"{self.name}-list"),
            path(f"{prefix}/new/", CrudCreate.as_view(**options), name=f"{self.name}-create"),
            path(f"{prefix}/<int:pk>/", CrudUpdate.as_view(**options), name=f"{self.name}-update"),
            path(
                f"{prefix}/<int:pk>/delete/",
                CrudDelete.as_view(**options),
                name=f"{self.name}-delete",
            ),
        ]

    def reverse(self, page: str, *args) -> str:
        """The URL of one of this model's pages (``list``, ``create``, ``update``, ``delete``)."""
        return reverse(f"{self.model._meta.app_label}:{self.name}-{page}", args=args)

    def templates(self, page: str) -> list[str]:
        return [f"{self.template_dir}/{page}", f"crud/{page}"]

    def can_create(self, user) -> bool:
        return user.is_superuser or not self.owner_only


class CrudMixin(LoginRequiredMixin):
    crud: Crud = None

    def get_queryset(self):
        queryset = self.crud.model.objects.manageable_by(self.request.user)
        return queryset.select_related(*self.crud.select_related)

    def get_success_url(self):
        return self.crud.reverse("list")

    def get_context_data(self, **kwargs):
        meta = self.crud.model._meta
        return super().get_context_data(
            crud=self.crud,
            verbose_name=meta.verbose_name,
            verbose_name_plural=meta.verbose_name_plural,
            list_url=self.crud.reverse("list"),
            **kwargs,
        )


class CrudList(CrudMixin, generic.ListView):
    paginate_by = 50

    def get_template_names(self):
        return self.crud.templates("list.html")

    def get_queryset(self):
        queryset = self.crud.model.objects.visible_to(self.request.user)
        return queryset.select_related(*self.crud.select_related).prefetch_related(
            *self.crud.prefetch_related
        )

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        user = self.request.user
        manageable = set(
            self.crud.model.objects.manageable_by(user)
            .filter(pk__in=[row.pk for row in context["object_list"]])
            .values_list("pk", flat=True)
        )
        rows = context["object_list"]
        states = liveness.of(self.crud.model, rows) if self.crud.liveness else {}
        context["rows"] = [
            (
                row,
                [_cell(row, column) for column in self.crud.columns],
                self._links(row, manageable),
                states.get(row.pk),
            )
            for row in rows
        ]
        context["headers"] = [_header(self.crud.model, column) for column in self.crud.columns]
        context["can_create"] = self.crud.can_create(user)
        context["create_url"] = self.crud.reverse("create")
        return context

    def _links(self, row, manageable: set) -> list[tuple[str, str]]:
        if row.pk not in manageable:
            return []
        links = [("Edit", self.crud.reverse("update", row.pk))]
        return links + _links(self.crud.row_links, row)


class CrudFormMixin(CrudMixin):
    def get_template_names(self):
        return self.crud.templates("form.html")

    def get_context_data(self, **kwargs):
        if not self.object:
            return super().get_context_data(**kwargs)
        return super().get_context_data(
            delete_url=self.crud.reverse("delete", self.object.pk),
            form_links=_links(self.crud.form_links, self.object),
            form_posts=_links(self.crud.form_posts, self.object),
            **kwargs,
        )

    def get_form_kwargs(self):
        return {**super().get_form_kwargs(), "user": self.request.user}

    def form_valid(self, form):
        try:
            response = super().form_valid(form)
        except ValidationError as exc:  # refused on saving, e.g. an address taken a moment ago
            add_refusal(form, exc)
            return self.form_invalid(form)
        messages.success(self.request, f"Saved {self.object}.")
        return response


class CrudCreate(CrudFormMixin, generic.CreateView):
    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated and not self.crud.can_create(request.user):
            raise PermissionDenied
        return super().dispatch(request, *args, **kwargs)

    def get_form_class(self):
        return self.crud.create_form_class or self.crud.form_class


class CrudUpdate(CrudFormMixin, generic.UpdateView):
    def get_form_class(self):
        return self.crud.form_class


class CrudDelete(CrudMixin, generic.DeleteView):
    template_name = "crud/confirm_delete.html"

    def get_context_data(self, **kwargs):
        return super().get_context_data(effects=self._effects(), **kwargs)

    def _effects(self) -> list[str]:
        return self.crud.delete_effects(self.object) if self.crud.delete_effects else []

    def form_valid(self, form):
        name, effects = str(self.object), self._effects()
        try:
            if self.crud.delete_service:
                self.crud.delete_service(self.object)
            else:
                self.object.delete()
        except ProtectedError as exc:
            used_by = ", ".join(sorted({str(obj) for obj in exc.protected_objects})[:5])
            messages.error(self.request, f"{name} is still in use by {used_by}.")
            return redirect(self.crud.reverse("update", self.object.pk))
        messages.success(self.request, f"Deleted {name}.")
        for effect in effects:
            messages.warning(self.request, effect)
        return redirect(self.get_success_url())


def _links(links: tuple[tuple[str, str], ...], row) -> list[tuple[str, str]]:
    return [(label, reverse(url_name, args=[row.pk])) for label, url_name in links]


def _header(model, column: str) -> str:
    try:
        return str(model._meta.get_field(column).verbose_name)
    except FieldDoesNotExist:
        return column.replace("_", " ")


def _cell(row, column: str):
    display = getattr(row, f"get_{column}_display", None)
    value = display() if display else getattr(row, column)
    if hasattr(value, "all"):
        return ", ".join(str(item) for item in value.all())
    if isinstance(value, list):
        return ", ".join(value)
    return value
