"""Traefik itself judges the files Mailgate renders for it (``docs/traefik.md``).

Traefik has no dry-run flag: it reports a mistake in its log and its API once it runs the
configuration. So these are shell scripts, pure text built from the rendered documents, that
read Traefik's API and compare it with what Mailgate meant:

- ``staged_script`` starts a throwaway Traefik on a check copy of the static configuration (no
  Docker provider, the API on loopback, ACME kept in a folder of its own) and the dynamic
  folder given, waits until the file provider's routers are in, judges them and stops it. It runs
  where nothing can answer: in the Traefik image with ``--network none`` before activation, in a
  network namespace of its own in the tests (``hosts.traefik_check``).
- ``live_script`` judges the running Traefik after a deployment, waiting until its file watcher
  has taken the new dynamic file in (hot reload): the activation fails, and the transaction puts
  the previous files back, if it never does.

Both need only a POSIX shell and wget or curl, which the Traefik image (Alpine) has. Every
router and service of the dynamic file must be in the API under ``<name>@file``, enabled, with
the rule, entry points, service, TLS settings and servers Mailgate wrote; the staged Traefik must
also count no warning or error and log nothing at WARN or above, except that it cannot reach the
ACME server (there is no network).
"""

import copy
import json
import shlex

import yaml

# The API on loopback only (``api.insecure`` serves it on the ``traefik`` entry point, which
# the static configuration binds here); the gateway's Traefik runs on the host's network.
API_ENTRY_POINT = "traefik"
API_ADDRESS = "127.0.0.1:8081"
API = f"http://{API_ADDRESS}/api"
STAGED_WAIT = 20  # seconds for the throwaway Traefik to load the file (it takes about one)
LIVE_WAIT = 60  # seconds for the running Traefik to pick a new file up (or to restart)
SETTLE = 2  # seconds of log watched after the routers are in: ACME and others log late
# What a certificate resolver logs when its first attempt fails (after it made its account
# key, which takes a few seconds on a busy machine), and the one such error a Traefik without
# network must log: it cannot reach the ACME directory. A resolver that cannot load its
# settings (the CA file of the ACME server, say) logs another.
ACME_ATTEMPT = "cannot get ACME client "
OFFLINE_ACME = f"{ACME_ATTEMPT}get directory at"
_END = "MAILGATE_TRAEFIK_CHECK"


def check_static(static: dict, dynamic_dir: str, *, ca_file: str = "") -> dict:
    """The static configuration the staged Traefik runs: the rendered one with the file provider
    on ``dynamic_dir``, no Docker provider (no daemon to ask, and its containers are not
    Mailgate's), ACME storage relative to the check's own folder, and a log of warnings only.
    ``ca_file``, where given, stands in for the resolvers' trusted CAs (where a check outside the
    image keeps the rendered file)."""
    checked = copy.deepcopy(static)
    checked["providers"] = {"file": {**static["providers"]["file"], "directory": dynamic_dir}}
    checked["log"] = {"level": "WARN", "format": "json"}
    for resolver in (checked.get("certificatesResolvers") or {}).values():
        resolver["acme"]["storage"] = "acme.json"
        if ca_file and "caCertificates" in resolver["acme"]:
            resolver["acme"]["caCertificates"] = [ca_file]
    return checked


def staged_script(static: dict, dynamic: dict, *, dynamic_dir: str, ca_file: str = "") -> str:
    """Start Traefik on ``dynamic_dir`` and judge what it loaded; exits non-zero, with Traefik's
    own messages, on any difference (a CA file its resolvers cannot load among them)."""
    config = yaml.safe_dump(check_static(static, dynamic_dir, ca_file=ca_file), sort_keys=False)
    return "\n".join(
        [
            *_helpers(dynamic),
            "dir=$(mktemp -d) || exit 1",
            "pid=",
            """trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$dir"' EXIT""",
            f"cat >\"$dir/traefik.yml\" <<'{_END}'",
            config.rstrip("\n"),
            _END,
            '(cd "$dir" && exec traefik --configfile="$dir/traefik.yml") >"$dir/log" 2>&1 &',
            "pid=$!",
            # Until the file provider's objects are in, or Traefik complained (a file it
            # refuses yields no object at all), or it exited.
            f'logged() {{ grep -v -F {shlex.quote(OFFLINE_ACME)} "$dir/log"; }}',
            f'i=0; while [ $i -lt {STAGED_WAIT * 10} ] && ! loaded && [ -z "$(logged)" ]; do',
            '  kill -0 "$pid" 2>/dev/null || break',
            "  i=$((i + 1)); sleep 0.1",
            "done",
            *(_first_acme_attempt() if _resolved(dynamic) else []),
            f"sleep {SETTLE}",
            "found=$(judge; overview)",
            'if [ -n "$(logged)" ]; then',
            '  found="$found',
            "Traefik logged:",
            '$(logged)"',
            "fi",
            'if [ -n "$found" ]; then printf \'traefik check:\\n%s\\n\' "$found"; exit 1; fi',
            "echo \"traefik check: Traefik $(traefik version | sed -n 's/^Version: *//p') loaded "
            'every router and service as rendered: $(fetch "$API/overview")"',
        ]
    )


def _resolved(dynamic: dict) -> bool:
    """Whether a router of the dynamic file gets its certificate from a resolver."""
    routers = [
        r
        for kind in ("http", "tcp")
        for r in ((dynamic.get(kind) or {}).get("routers") or {}).values()
    ]
    return any((router.get("tls") or {}).get("certResolver") for router in routers)


def _first_acme_attempt() -> list[str]:
    """Until a resolver has tried for a router's certificate (and so loaded its settings), or
    Traefik exited."""
    return [
        f'tried() {{ grep -q -F {shlex.quote(ACME_ATTEMPT)} "$dir/log"; }}',
        f"i=0; while [ $i -lt {STAGED_WAIT * 10} ] && ! tried; do",
        '  kill -0 "$pid" 2>/dev/null || break',
        "  i=$((i + 1)); sleep 0.1",
        "done",
    ]


def live_script(dynamic: dict, *, wait: int = LIVE_WAIT) -> str:
    """Wait up to ``wait`` seconds until the running Traefik serves these routers and
    services as rendered."""
    return "\n".join(
        [
            *_helpers(dynamic),
            'i=0; until found=$(judge) && [ -z "$found" ]; do',
            f"  if [ $i -ge {wait * 2} ]; then",
            f'    printf "traefik: after {wait} s the running Traefik still differs:\\n%s\\n"'
            ' "$found"',
            "    exit 1",
            "  fi",
            "  i=$((i + 1)); sleep 0.5",
            "done",
            'echo "traefik: the running Traefik serves every router and service as rendered'
            ' (after $((i / 2)).$((i % 2 * 5)) s)"',
        ]
    )


def _helpers(dynamic: dict) -> list[str]:
    return [
        "set -u",
        f"API={API}",
        'fetch() { wget -q -O - "$1" 2>/dev/null || curl -fsS "$1" 2>/dev/null; }',
        'loaded() { fetch "$API/rawdata" | grep -q \'@file"\'; }',
        "overview() {",
        '  o=$(fetch "$API/overview") || { echo "the API does not answer"; return; }',
        '  case "$o" in *\'"warnings":\'[1-9]*|*\'"errors":\'[1-9]*)',
        '    echo "Traefik counts warnings or errors: $o"',
        '    fetch "$API/rawdata" | tr "{" "\\n" | grep -F \'"error":\' ;;',
        "  esac",
        "}",
        "expect() {  # KIND PART NAME FRAGMENT...: one object, as Traefik's API shows it",
        "  kind=$1 part=$2 name=$3; shift 3",
        '  if ! body=$(fetch "$API/$kind/$part/$name@file"); then',
        '    echo "$kind $part: $name@file is missing"; return',
        "  fi",
        '  for fragment in "$@"; do',
        '    case "$body" in *"$fragment"*) ;; *)',
        '      echo "$kind $part: $name@file lacks $fragment; Traefik has: $body" ;;',
        "    esac",
        "  done",
        "}",
        *_judge(dynamic),
    ]


def _judge(dynamic: dict) -> list[str]:
    calls = [
        " ".join(shlex.quote(word) for word in (kind, part, name, *fragments))
        for kind, part, name, fragments in expectations(dynamic)
    ]
    return ["judge() {", *(f"  expect {call}" for call in calls), "}"]


def expectations(dynamic: dict) -> list[tuple[str, str, str, list[str]]]:
    """(kind, "routers" or "services", name, the JSON fragments Traefik's API must show for it)
    for every object of the dynamic file."""
    found = []
    for kind in ("http", "tcp"):
        section = dynamic.get(kind) or {}
        for name, router in (section.get("routers") or {}).items():
            found.append((kind, "routers", name, _router_fragments(router)))
        for name, service in (section.get("services") or {}).items():
            found.append((kind, "services", name, _service_fragments(service)))
    return found


def _router_fragments(router: dict) -> list[str]:
    fragments = [
        _pair("status", "enabled"),
        _pair("entryPoints", router["entryPoints"]),
        _pair("service", router["service"]),
        _pair("rule", router["rule"]),
    ]
    if "priority" in router:
        fragments.append(_pair("priority", router["priority"]))
    tls = router.get("tls") or {}
    fragments += [_pair(key, value) for key, value in tls.items()]
    return fragments


def _service_fragments(service: dict) -> list[str]:
    balancer = service["loadBalancer"]
    fragments = [_pair("status", "enabled")]
    servers = balancer["servers"]
    fragments += [_pair(key, value) for server in servers for key, value in server.items()]
    if "serversTransport" in balancer:
        fragments.append(_pair("serversTransport", f"{balancer['serversTransport']}@file"))
    return fragments


def _pair(key: str, value) -> str:
    """``"key":value`` as Go's encoding/json writes it: compact, and &, < and > escaped."""
    text = json.dumps({key: value}, separators=(",", ":"), ensure_ascii=False)[1:-1]
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
