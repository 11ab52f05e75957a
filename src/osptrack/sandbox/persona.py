"""The victim workstation the sandbox pretends to be: a developer's Linux laptop, as data.

Malware that checks where it runs (uid 0, a `build` hostname, an empty home, no network card,
`systemd-detect-virt`) withholds its payload in a sandbox. The persona answers those checks the
way one machine of a real fleet would. What varies between runs is only what varies between real
machines (the user, the hostname, the MAC and address), picked from small lists; within a run it
is one consistent machine (passwd, group, $USER, $HOME, hostname, hosts), recorded in run.json.

What cannot be hidden, and why, is listed in docs/security.md ("Sandbox signs").
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

UID = 1000  # the first user account of a Debian/Ubuntu install
GID = 1000
SHELL = "/bin/bash"

# (login, full name): the first account of a developer's machine.
USERS = (
    ("alex", "Alex Morgan"),
    ("jordan", "Jordan Lee"),
    ("priya", "Priya Raman"),
    ("daniel", "Daniel Novak"),
    ("mchen", "Michael Chen"),
    ("sofia", "Sofia Rossi"),
)
# Ubuntu's installer suggests `<user>-<product name>`; people also pick their own.
MACHINES = (
    ("ThinkPad-T14-Gen-3", "LENOVO", "21AH00BVUS"),
    ("XPS-13-9315", "Dell Inc.", "XPS 13 9315"),
    ("Latitude-7440", "Dell Inc.", "Latitude 7440"),
    ("EliteBook-840-G9", "HP", "HP EliteBook 840 14 inch G9 Notebook PC"),
)
# Locally administered MACs would give the sandbox away; these are real vendor prefixes
# (Intel wireless, Realtek, Intel I219 Ethernet) as laptops carry them.
MAC_PREFIXES = ("3c:21:9c", "00:e0:4c", "a4:bb:6d", "8c:8c:aa")
# The RFC 1918 home/office subnets routers hand out. The address is on eth0 inside the namespace;
# nothing is routed through it (see netns.py).
SUBNETS = ("192.168.1", "192.168.0", "10.0.0", "192.168.178")

# Installed-package folders the persona's interpreters see (filled by scripts/setup.sh; see
# persona_python.txt). The sandbox mounts them read-only where Debian's python3 looks.
PYTHON_SITE_HOST = "persona-python"  # under OSPTRACK_CACHE
PYTHON_SITE = "/usr/local/lib/python3.11/dist-packages"
# The CA bundle requests/httpx/aiohttp use there (TLS interception binds the run's CA over it).
PYTHON_CERTIFI = f"{PYTHON_SITE}/certifi/cacert.pem"


@dataclass(frozen=True)
class Persona:
    user: str
    full_name: str
    hostname: str
    vendor: str
    product: str
    mac: str
    address: str  # eth0's IPv4 address, with prefix length
    uid: int = UID
    gid: int = GID

    @property
    def home(self) -> str:
        return f"/home/{self.user}"

    @property
    def gateway(self) -> str:
        return self.address.rsplit(".", 1)[0] + ".1"

    def as_dict(self) -> dict[str, object]:
        return {
            "user": self.user,
            "uid": self.uid,
            "gid": self.gid,
            "home": self.home,
            "hostname": self.hostname,
            "dmi": {"sys_vendor": self.vendor, "product_name": self.product},
            "eth0": {"mac": self.mac, "address": self.address},
        }

    def env(self) -> dict[str, str]:
        """The login environment a terminal on this machine has."""
        return {
            "HOME": self.home,
            "USER": self.user,
            "LOGNAME": self.user,
            "SHELL": SHELL,
            "LANG": "en_US.UTF-8",  # and its data inside: sandbox/locales.py compiles what LANG/LC_* name
            "TERM": "xterm-256color",
            "XDG_RUNTIME_DIR": f"/run/user/{self.uid}",
            "XDG_SESSION_TYPE": "x11",
            "HOSTNAME": self.hostname,
        }

    def etc_files(self, resolver: str) -> dict[str, str]:
        u = self.user
        return {
            "passwd": (
                "root:x:0:0:root:/root:/bin/bash\n"
                "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
                "bin:x:2:2:bin:/bin:/usr/sbin/nologin\n"
                "sys:x:3:3:sys:/dev:/usr/sbin/nologin\n"
                "sync:x:4:65534:sync:/bin:/bin/sync\n"
                "man:x:6:12:man:/var/cache/man:/usr/sbin/nologin\n"
                "www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\n"
                "systemd-network:x:998:998:systemd Network Management:/:/usr/sbin/nologin\n"
                "messagebus:x:100:107::/nonexistent:/usr/sbin/nologin\n"
                f"{u}:x:{self.uid}:{self.gid}:{self.full_name},,,:{self.home}:{SHELL}\n"
                "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
            ),
            "group": (
                f"root:x:0:\nadm:x:4:{u}\ncdrom:x:24:{u}\nsudo:x:27:{u}\ndip:x:30:{u}\n"
                f"plugdev:x:46:{u}\nusers:x:100:{u}\ndocker:x:999:{u}\n{u}:x:{self.gid}:\nnogroup:x:65534:\n"
            ),
            "hosts": (
                f"127.0.0.1\tlocalhost\n127.0.1.1\t{self.hostname}\n\n"
                "::1\tip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff02::1\tip6-allnodes\n"
            ),
            "hostname": f"{self.hostname}\n",
            "resolv.conf": f"nameserver {resolver}\noptions timeout:2 attempts:1\n",
            "nsswitch.conf": "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n",
            "machine-id": secrets.token_hex(16) + "\n",
        }

    def sys_files(self) -> dict[str, str]:
        """Files bound over an otherwise absent /sys: what DMI says on this laptop."""
        return {
            "class/dmi/id/sys_vendor": f"{self.vendor}\n",
            "class/dmi/id/product_name": f"{self.product}\n",
            "class/dmi/id/board_vendor": f"{self.vendor}\n",
            "class/dmi/id/chassis_type": "10\n",  # 10 = notebook
        }


def choose_persona() -> Persona:
    rng = secrets.SystemRandom()
    user, full_name = rng.choice(USERS)
    model, vendor, product = rng.choice(MACHINES)
    mac = rng.choice(MAC_PREFIXES) + "".join(f":{rng.randrange(256):02x}" for _ in range(3))
    address = f"{rng.choice(SUBNETS)}.{rng.randrange(20, 240)}/24"
    return Persona(user, full_name, f"{user}-{model}", vendor, product, mac, address)


PYTHON_PINS = Path(__file__).with_name("persona_python.txt")


@functools.cache
def python_pins() -> dict[str, str]:
    """The persona's pre-installed Python packages: normalised name -> pinned version."""
    pins = {}
    for line in PYTHON_PINS.read_text().splitlines():
        spec = line.split("#", 1)[0].split()
        if spec and "==" in spec[0]:
            name, _, version = spec[0].partition("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def python_site_host() -> Path | None:
    """The host folder of the persona's pre-installed Python packages, if setup.sh made it."""
    path = Path(os.environ.get("OSPTRACK_CACHE", "/var/cache/osptrack")) / PYTHON_SITE_HOST
    return path if path.is_dir() else None


# --- the lived-in home --------------------------------------------------------------------------

_BASHRC = """# ~/.bashrc: executed by bash(1) for non-login shells.
case $- in
    *i*) ;;
      *) return;;
esac
HISTCONTROL=ignoreboth
shopt -s histappend
HISTSIZE=1000
HISTFILESIZE=2000
shopt -s checkwinsize
if [ -x /usr/bin/dircolors ]; then
    eval "$(dircolors -b)"
    alias ls='ls --color=auto'
    alias grep='grep --color=auto'
fi
alias ll='ls -alF'
alias la='ls -A'
alias gs='git status'
export EDITOR=vim
export PATH="$HOME/.local/bin:$PATH"
[ -f ~/.bash_aliases ] && . ~/.bash_aliases
if ! shopt -oq posix && [ -f /usr/share/bash-completion/bash_completion ]; then
  . /usr/share/bash-completion/bash_completion
fi
"""
_PROFILE = """# ~/.profile: executed by the command interpreter for login shells.
if [ -n "$BASH_VERSION" ]; then
    if [ -f "$HOME/.bashrc" ]; then
        . "$HOME/.bashrc"
    fi
fi
if [ -d "$HOME/bin" ] ; then
    PATH="$HOME/bin:$PATH"
fi
if [ -d "$HOME/.local/bin" ] ; then
    PATH="$HOME/.local/bin:$PATH"
fi
"""
_HISTORY = """cd ~/projects/invoice-api
git pull
python3 -m venv .venv
source .venv/bin/activate
pip install -r requirements.txt
pytest -q
git status
git add -A
git commit -m "fix pagination off-by-one"
git push origin main
docker ps
docker compose up -d db
aws s3 ls
aws sts get-caller-identity
ssh deploy@staging.internal
npm install
npm run build
code .
htop
df -h
ls -la ~/.ssh
cat ~/.aws/config
kubectl get pods -n staging
git log --oneline | head
vim README.md
sudo apt update && sudo apt upgrade -y
python3 manage.py runserver
curl -s localhost:8000/health
"""
_SSH_CONFIG = "Host staging\n    HostName staging.internal\n    User deploy\n    IdentityFile ~/.ssh/id_rsa\n"
_KNOWN_HOSTS = (
    "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
    "gitlab.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAfuCHKVTjquxvt6CM6tdG4SLp1Btn/nOeHHE5UOzRdf\n"
)


def _gitconfig(p: Persona) -> str:
    return (
        f"[user]\n\tname = {p.full_name}\n\temail = {p.user}@users.noreply.github.com\n"
        "[init]\n\tdefaultBranch = main\n[pull]\n\trebase = false\n[core]\n\teditor = vim\n"
        "[credential]\n\thelper = store\n"
    )


def home_files(p: Persona) -> dict[str, str]:
    """Files of a home in use (relative path -> content); the baits are planted beside them."""
    project = "projects/invoice-api"
    return {
        ".bashrc": _BASHRC,
        ".profile": _PROFILE,
        ".bash_logout": "# ~/.bash_logout: executed by bash(1) when login shell exits.\n",
        ".bash_history": _HISTORY,
        ".gitconfig": _gitconfig(p),
        ".ssh/config": _SSH_CONFIG,
        ".ssh/known_hosts": _KNOWN_HOSTS,
        ".ssh/id_rsa.pub": f"ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQC{secrets.token_hex(40)} {p.user}@{p.hostname}\n",
        ".aws/config": "[default]\nregion = us-east-1\noutput = json\n",
        ".config/Code/User/settings.json": '{\n  "editor.fontSize": 13,\n  "files.autoSave": "afterDelay"\n}\n',
        ".config/user-dirs.dirs": 'XDG_DESKTOP_DIR="$HOME/Desktop"\nXDG_DOWNLOAD_DIR="$HOME/Downloads"\n',
        ".cache/pip/selfcheck.json": '{"last_check": "2026-11-20T09:12:44Z", "pypi_version": "24.3.1"}\n',
        ".local/share/recently-used.xbel": '<?xml version="1.0" encoding="UTF-8"?>\n<xbel version="1.0"/>\n',
        "Documents/notes.md": "# TODO\n- rotate staging keys\n- review PR #142\n",
        "Downloads/.keep": "",
        "Desktop/.keep": "",
        f"{project}/README.md": "# invoice-api\n\nInternal invoicing service.\n",
        f"{project}/requirements.txt": "flask==3.0.3\nrequests==2.32.3\npsycopg2-binary==2.9.9\n",
        f"{project}/app.py": "from flask import Flask\n\napp = Flask(__name__)\n",
        f"{project}/.env": "DATABASE_URL=postgres://invoice:invoice@localhost:5432/invoice\nDEBUG=1\n",
        f"{project}/.git/HEAD": "ref: refs/heads/main\n",
        f"{project}/.git/config": (
            "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n"
            '[remote "origin"]\n\turl = git@github.com:acme-internal/invoice-api.git\n'
            "\tfetch = +refs/heads/*:refs/remotes/origin/*\n"
            '[branch "main"]\n\tremote = origin\n\tmerge = refs/heads/main\n'
        ),
        f"{project}/.git/description": "Unnamed repository; edit this file 'description' to name the repository.\n",
    }


def seed_home(p: Persona, home: Path, owner_uid: int, owner_gid: int) -> None:
    """Write the lived-in home on the host side, owned by the sandbox user (outside: `nobody`)."""
    for rel, content in home_files(p).items():
        path = home / rel
        for parent in reversed(path.relative_to(home).parents):
            folder = home / parent
            if not folder.exists():
                folder.mkdir(mode=0o700 if parent.parts[:1] in ((".ssh",), (".aws",)) else 0o755)
                os.chown(folder, owner_uid, owner_gid)
        path.write_text(content)
        path.chmod(0o600 if rel.startswith((".ssh/", ".aws/", ".bash_history")) else 0o644)
        os.chown(path, owner_uid, owner_gid)
    for rel in (".local/bin", ".local/lib", ".cache", "Music", "Pictures", "Videos", "Templates", "Public"):
        folder = home / rel
        folder.mkdir(parents=True, exist_ok=True, mode=0o755)
        os.chown(folder, owner_uid, owner_gid)


# --- the machine ---------------------------------------------------------------------------------

# systemd-detect-virt on bare metal prints `none` and exits 1; the options only change what is
# printed (or, with --quiet, nothing).
_DETECT_VIRT = """#!/bin/sh
for arg in "$@"; do
  case "$arg" in
    -q|--quiet) exit 1 ;;
    --list) printf 'none\\nkvm\\nqemu\\nvmware\\nmicrosoft\\noracle\\nxen\\nbochs\\ndocker\\npodman\\nlxc\\nwsl\\n'; exit 0 ;;
    -h|--help) echo "systemd-detect-virt [OPTIONS...]"; exit 0 ;;
    --version) echo "systemd 252 (252.36-1~deb12u1)"; exit 0 ;;
  esac
done
echo none
exit 1
"""
DETECT_VIRT = "/usr/bin/systemd-detect-virt"


def cpuinfo_without_hypervisor(text: str) -> str:
    """/proc/cpuinfo as bare metal shows it: no `hypervisor` flag (cpuid itself still has it)."""
    out = []
    for line in text.splitlines(keepends=True):
        if line.startswith("flags") and ":" in line:
            key, _, flags = line.partition(":")
            line = f"{key}: {' '.join(f for f in flags.split() if f != 'hypervisor')}\n"
        out.append(line)
    return "".join(out)


def overlay_files(p: Persona) -> dict[str, tuple[str, int]]:
    """Single files bound read-only over the sandbox's view (see bwrap.SandboxSpec.overlay)."""
    files: dict[str, tuple[str, int]] = {f"/sys/{rel}": (text, 0o444) for rel, text in p.sys_files().items()}
    if Path(DETECT_VIRT).exists():  # only bound over the host's own (no mount point in a read-only /usr)
        files[DETECT_VIRT] = (_DETECT_VIRT, 0o755)
    with contextlib.suppress(OSError):
        files["/proc/cpuinfo"] = (cpuinfo_without_hypervisor(Path("/proc/cpuinfo").read_text()), 0o444)
    return files


def persona_binds() -> tuple[tuple[str, str], ...]:
    """Read-only binds of the persona's pre-installed packages (none when setup.sh made none)."""
    site = python_site_host()
    return ((str(site), PYTHON_SITE),) if site is not None else ()
