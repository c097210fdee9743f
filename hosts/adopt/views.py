"""The host's adoption page (owner only): what adopting it would bring into Mailgate, read from
the host over SSH without changing anything there, with the plan; the button adopts it."""

from django.shortcuts import get_object_or_404, render

from gateway.scoping import owner_required
from hosts import transport
from hosts.adopt.report import AdoptionRefused
from hosts.adopt.services import host_adopt
from hosts.adopt.sources import RemoteTree
from hosts.models import Host


@owner_required
def host_adopt_page(request, pk):
    """GET: a dry run; POST: the adoption, then the same report and plan."""
    host = get_object_or_404(Host, pk=pk)
    adopting = request.method == "POST"
    context = {"host": host, "adopted": adopting, "report": None, "plan": None, "error": ""}
    try:
        with transport.Session(host) as session:
            adoption = host_adopt(host=host, tree=RemoteTree(session), dry_run=not adopting)
        context.update(report=adoption.report, plan=adoption.plan)
    except AdoptionRefused as exc:
        context.update(report=exc.report, adopted=False)
    except (transport.TransportError, OSError) as exc:
        context["error"] = str(exc)
    return render(request, "hosts/host_adopt.html", context)
