"""Mailgate's deploy engine against Ansible, pushing the same bundle to the same lab sshd.

    bin/bootstrap --bench && .venv/bin/python bench/deploy_vs_ansible.py   (as root)

The bundle: 12 configuration files, each validated on the host before it counts (``sh -n``)
and one reload when anything changed. Ansible gets the equivalent playbook: ``template`` with
``validate:``, a handler for the reload, facts off, pipelining on and its default SSH
ControlPersist (so its later runs reuse the connection). Both go to a lab host in a network
namespace (``lab.hosts``), each into its own folder. Measured in one run, best of ``--repeat``:
the first deployment, a deployment with nothing changed, and one with one file changed.
Goals: one file changed, with its check and reload, in at most 0.5 s and at least 20x faster
than Ansible; the first deployment in at most 1.0 s; nothing changed at least 40x faster.
"""

import argparse
import os
import shutil
import subprocess
import time

import panel

WORK = panel.setup()

from django.core.management import call_command

from gateway.bundle import Bundle, File, Unit
from hosts import services
from hosts.choices import DeploymentStatus, DeploymentTrigger
from hosts.models import Host
from lab.hosts import LabHost

BASE = "/srv/mailgate-bench"
FILES = 12
PLAYBOOK = """\
- hosts: lab
  gather_facts: false
  tasks:
    - name: configuration files
      ansible.builtin.template:
        src: "{{{{ item }}}}.sh.j2"
        dest: "{base}/ansible/{{{{ item }}}}.sh"
        mode: "0644"
        validate: sh -n %s
      loop: {names}
      notify: reload
  handlers:
    - name: reload
      ansible.builtin.shell: cat {base}/ansible/*.sh > {base}/ansible.active
"""


def names() -> list[str]:
    return [f"part{number:02}" for number in range(FILES)]


def content(name: str, version: int) -> str:
    value = version if name == "part05" else 1
    return f"# Managed by Mailgate.\n{name.upper()}_VERSION={value}\n{name.upper()}_NAME={name}\n"


def bundle(version: int) -> Bundle:
    folder = f"{BASE}/mailgate"
    files = tuple(File(f"{folder}/{name}.sh", content(name, version).encode()) for name in names())
    return Bundle(
        host="bench",
        units=(
            Unit(
                "bench",
                files,
                checks=(f'for file in "$STAGE"{folder}/*.sh; do sh -n "$file" || exit 1; done',),
                activate=(f"cat {folder}/*.sh > {BASE}/mailgate.active",),
            ),
        ),
    )


def mailgate(host: Host, version: int) -> float:
    start = time.perf_counter()
    deployment = services.deployment_run_here(
        host=host, trigger=DeploymentTrigger.BENCH, bundle=bundle(version)
    )
    seconds = time.perf_counter() - start
    if deployment.status != DeploymentStatus.SUCCEEDED:
        raise SystemExit(f"Mailgate's deployment failed:\n{deployment.log}")
    return seconds


class Ansible:
    def __init__(self, lab: LabHost):
        self.dir = WORK / "ansible"
        self.dir.mkdir()
        key = self.dir / "id_ed25519"
        key.write_text(lab.client_key)
        key.chmod(0o600)
        known = self.dir / "known_hosts"
        known.write_text(f"{lab.address} {lab.host_key}\n")
        options = f"-o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes"
        (self.dir / "inventory").write_text(
            f"[lab]\nbench ansible_host={lab.address} ansible_user=root "
            f"ansible_ssh_private_key_file={key} ansible_ssh_common_args='{options}'\n"
        )
        (self.dir / "ansible.cfg").write_text(
            "[defaults]\ninterpreter_python = /usr/bin/python3\n"
            "[ssh_connection]\npipelining = True\n"
        )
        (self.dir / "site.yml").write_text(PLAYBOOK.format(base=BASE, names=names()))

    def run(self, version: int) -> float:
        for name in names():
            (self.dir / f"{name}.sh.j2").write_text(content(name, version))
        start = time.perf_counter()
        result = subprocess.run(  # noqa: S603
            [str(panel.ROOT / ".venv/bin/ansible-playbook"), "-i", "inventory", "site.yml"],
            cwd=self.dir,
            env={**os.environ, "ANSIBLE_CONFIG": str(self.dir / "ansible.cfg")},
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - start
        if result.returncode:
            raise SystemExit(f"ansible-playbook failed:\n{result.stdout}{result.stderr}")
        return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    call_command("migrate", verbosity=0)
    lab = LabHost.create(prefix="bench", private_dirs=(BASE, "/var/lib/mailgate"))
    try:
        lab.run(f"mkdir -p {BASE}/ansible {BASE}/mailgate")
        host = Host.objects.create(
            name="bench",
            is_relay=True,
            ssh_address=lab.address,
            ssh_private_key=lab.client_key,
            ssh_host_key=lab.host_key,
        )
        ansible = Ansible(lab)
        rows = [("first deployment", mailgate(host, 1), ansible.run(1))]
        rows.append(("nothing changed", *best(options.repeat, host, ansible, lambda n: 1)))
        rows.append(("one file changed", *best(options.repeat, host, ansible, lambda n: n + 2)))
        report(rows)
    finally:
        lab.close()


def best(repeat: int, host: Host, ansible: Ansible, version) -> tuple[float, float]:
    ours, theirs = [], []
    for number in range(repeat):
        ours.append(mailgate(host, version(number)))
        theirs.append(ansible.run(version(number)))
    return min(ours), min(theirs)


def report(rows) -> None:
    print(f"{FILES} files, validated on the host, one reload; best of the repeats after the first")
    print(f"{'':18} {'Mailgate':>10} {'Ansible':>10} {'ratio':>8}")
    for label, ours, theirs in rows:
        print(f"{label:18} {ours:9.3f}s {theirs:9.3f}s {theirs / ours:7.1f}x")


if __name__ == "__main__":
    try:
        main()
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
