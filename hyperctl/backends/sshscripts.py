"""The shell programs hyperctl runs on SSH hosts, each a function that returns one (POSIX sh).

Every value is quoted here (shlex.quote, or int() for numbers): the callers pass plain paths,
names and numbers. What a program prints is what the executor (ssh.py) and the channel
reader (sshchannel.py, collect.py) read: each docstring says it.
"""

from __future__ import annotations

import io
import os
import shlex
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath

from hyperctl.attemptfiles import EXIT_CODE_LIMIT
from hyperctl.backends.base import LAUNCHER, PARAMS_ENV
from hyperctl.backends.collect import ATTEMPT_FILES

_q = shlex.quote


@dataclass(frozen=True)
class RemotePaths:
    """An attempt's folders on its host: the batch folder's layout (layout.py) under remote_root."""

    job: PurePosixPath  # the job's own folder: its data dir unless the batch file gives another
    attempt: PurePosixPath
    params_file: PurePosixPath
    data: PurePosixPath
    working: PurePosixPath


def root_word(remote_root: str) -> str:
    """remote_root as a shell word on the host: ~ and relative paths are in its home."""
    if remote_root == "~":
        return '"$HOME"'
    if remote_root.startswith("/"):
        return _q(remote_root)
    return '"$HOME"/' + _q(remote_root[2:] if remote_root.startswith("~/") else remote_root)


def env_line(env: dict[str, str]) -> str:
    """The environment as one line of sh that exports it (what spawn() reads on stdin): a value's
    newlines come from $_hc_nl, so that the line is one line whatever the values."""
    if not env:
        return ":"
    return "export " + " ".join(f"{k}={_q(v)}".replace("\n", "'\"$_hc_nl\"'") for k, v in env.items())


_FOREIGN = "hyperctl uses only folders of its own user: refused"
_NOT_OURS = ": is another user's; " + _FOREIGN


def _refuse_foreign(*folders: PurePosixPath) -> str:
    """Exits 3, with why on stderr, when one of the folders is there and is not the user's own,
    or is a symbolic link (another user may have put it there first, on a shared host)."""
    words = " ".join(_q(str(f)) for f in folders)
    why = "is another user's, or a symbolic link; " + _FOREIGN
    return (
        f'for _hc_d in {words}; do if [ -L "$_hc_d" ] || {{ [ -e "$_hc_d" ] && [ ! -O "$_hc_d" ]; }}; then '
        f'echo "$_hc_d: "{_q(why)} >&2; exit 3; fi; done && '
    )


def set_up(remote_root: str, lib: tuple[str, dict[str, str]], ask_gpus: bool) -> str:
    """Run once per new connection. Prints five lines: the host's $HOME, its CPUs (nproc), its RAM
    in MB, its GPU indices on one line (with ask_gpus: nvidia-smi, run with the machine's
    environment, which env_line() gives on stdin, since a secret may be in it; else an empty
    line), and its umask. Installs the job-side hyperctl (job_side_lib()) under
    remote_root/.lib/VERSION/ once, which proves remote_root writable: when it is not, or when
    remote_root is another user's, exits 3 with why on stderr. What it makes is private."""
    version, files = lib
    writes = " && ".join(f'printf %s {_q(text)} > "$lib"/{name}' for name, text in files.items())
    gpus = "echo"
    if ask_gpus:  # in the machine's environment: its PATH may be where nvidia-smi is
        smi = "nvidia-smi --query-gpu=index --format=csv,noheader"
        gpus = f"(IFS= read -r _hc_env && _hc_nl='\n' && eval \"$_hc_env\" && {smi} 2>/dev/null | tr '\\n' ' '); echo"
    return (
        f'printf "%s\\n" "$HOME"; nproc 2>/dev/null || echo 1; '
        "awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo 2>/dev/null || echo 0; "
        f"{gpus}; umask; umask 077; root={root_word(remote_root)}; "
        'if [ -e "$root" ] && [ ! -O "$root" ]; then '
        f"echo remote_root {_q(remote_root)}{_q(_NOT_OURS)} >&2; exit 3; fi; "
        f'lib="$root"/.lib/{version}/hyperctl; '
        f'[ -f "$lib/.ready" ] || e=$( {{ mkdir -p "$lib" && {writes} && : > "$lib/.ready"; }} 2>&1) || '
        f'{{ echo remote_root {_q(remote_root)}": cannot write there: $e" >&2; exit 3; }}'
    )


def upload(paths: RemotePaths) -> str:
    """Reads a tar on stdin (upload_payload()): its w/ into the working dir (the job's assets), its
    j/params.json to the params file (params too long for an argument). Prints nothing; exits
    non-zero, with why on stderr, when it cannot."""
    records = _q(str(paths.params_file.parent))
    return (
        f"umask 077 && {_refuse_foreign(paths.job.parent, paths.job.parent / '.hyperctl')}"
        f't=$(mktemp -d) && tar -xf - -C "$t" && mkdir -p {_q(str(paths.working))} {records} && '
        f'{{ [ ! -d "$t/w" ] || cp -R "$t/w/." {_q(str(paths.working))}; }} && '
        f'{{ [ ! -d "$t/j" ] || cp "$t/j/params.json" {_q(str(paths.params_file))}; }}; s=$?; rm -rf "$t"; exit $s'
    )


def upload_payload(assets: Iterable[str], params_json: str | None) -> bytes:
    """What upload() reads: the assets (local files and folders) under w/, params_json (if given) as j/params.json."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for asset in assets:
            tar.add(asset, arcname="w/" + os.path.basename(asset.rstrip("/")))
        if params_json is not None:
            data = (params_json + "\n").encode()
            info = tarfile.TarInfo("j/params.json")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def spawn(
    paths: RemotePaths,
    command: str,
    lib_dir: PurePosixPath,
    send_home: str,
    umask: str,
    identity: dict[str, str],
    shell: str | None = None,
) -> str:
    """Start an attempt. Reads on stdin (spawn_input(): secrets, never on a command line, which
    `ps` shows anyone on the host) the job's token, then its environment and params as one line,
    exports them with the job-side lib on PYTHONPATH, then prints the launcher's pid on the first
    line and runs the job (base.LAUNCHER, the command with `umask`, by `shell` if given) in a
    session of its own that outlives the connection (setsid -w). Its folders and files are
    private; a batch folder there that is not the user's is refused (exit 3, why on stderr). Once
    it has ended, ends what it left outside its process group (the processes that carry its
    `identity`), sends the attempt home on the same channel (`send_home`, a collect() program)
    and exits with setsid's status: the launcher's exit code, or the signal that ended it."""
    dirs = " ".join(_q(str(p)) for p in dict.fromkeys((paths.attempt, paths.data)))
    batch = paths.job.parent
    args = (command, paths.attempt, paths.working, paths.params_file, umask, shell or "")
    return (
        "IFS= read -r HYPERCTL_JOB_TOKEN && export HYPERCTL_JOB_TOKEN && IFS= read -r _hc_env && "
        "_hc_nl='\n' && eval \"$_hc_env\" && umask 077 && "
        f"{_refuse_foreign(batch, batch / '.hyperctl')}"
        # An exitcode and metrics left by an earlier batch of this name are emptied: never mistaken
        # for this one's.
        f"mkdir -p {dirs} && : > {_q(str(paths.attempt / 'exitcode'))} && : > {_q(str(paths.attempt / 'metrics'))} && "
        f'export PYTHONPATH="${{PYTHONPATH:+$PYTHONPATH:}}"{_q(str(lib_dir))} && '
        f"setsid -w /bin/sh -c {_q('echo $$; ' + LAUNCHER)} hyperctl-job {' '.join(_q(str(a)) for a in args)} "
        # What the job left outside its process group ends with it too (this shell is the only
        # other carrier of its identity, and the search is run without it).
        f"</dev/null; s=$?; for p in $({carriers(identity)}); do [ $p = $$ ] || kill -TERM $p; done; "
        f"{send_home}; exit $s"
    )


def spawn_input(token: str, env: dict[str, str], params: str) -> bytes:
    """What spawn() reads on stdin: the token, then the environment, with the params ("" when the
    params file is uploaded already) for the launcher to write."""
    if params:
        env = {**env, PARAMS_ENV: params}
    return f"{token}\n{env_line(env)}\n".encode()


def reattach(pid: int, identity: dict[str, str], send_home: str) -> str:
    """Watch an attempt started before (by a daemon that died, or on a connection that dropped).
    Prints `adopted` on the first line when pid is still its launcher (it leads its process group
    and its environment carries `identity`), and waits for it to end, looking once a second;
    else prints `gone`. Either way, then sends the attempt home (`send_home`, a collect() program)."""
    checks = " && ".join(f"tr '\\0' '\\n' < /proc/$p/environ | grep -qxF {_q(f'{k}={v}')}" for k, v in identity.items())
    return (
        f"p={int(pid)}; if {checks} && [ \"$(ps -o pgid= -p $p | tr -d ' ')\" = $p ]; then echo adopted; "
        # once a second, on the host, and only for jobs found after a restart or a drop
        "while s=$(cut -d' ' -f3 /proc/$p/stat 2>/dev/null) && [ \"$s\" != Z ]; do sleep 1; done; "
        f"else echo gone; fi; {send_home}"
    )


def collect(paths: RemotePaths, download: bool | list[str], assets: Iterable[str]) -> str:
    """Send an ended attempt home, framed as collect.py reads it: the sizes of stdout, stderr and
    exitcode (one per line), their bytes, then (unless download is False) a tar of the data dir's
    files (those matching `download`, a list of globs, or all) to the end of the stream. What
    never comes back is left out: the attempt folders and params file when the data dir is the
    job's folder, the uploaded assets when it is the working dir. Only builtins run unless the
    data dir holds something to send."""
    exclude = []  # `case` patterns
    if paths.attempt.parent == paths.data:  # records inside the data dir (batches of hyperctl 0.1.0)
        exclude += ["attempt-*", "params.json"]
    if paths.data == paths.working:  # names, not patterns: an asset may be called `*`
        exclude += [_literal(os.path.basename(a.rstrip("/"))) for a in assets]
    names = " ".join(ATTEMPT_FILES)
    empty = "0\\n" * (len(ATTEMPT_FILES) - 1)  # the sizes of the files before exitcode, all empty
    # Most short jobs print and report nothing: then shell builtins alone send the exit code, no
    # stat nor cat. A job that reported nothing has no metrics file: an empty one is sent.
    script = (
        f"cd {_q(str(paths.attempt))} && if [ -s stdout ] || [ -s stderr ] || [ -s metrics ]; then "
        f"{{ [ -e metrics ] || (umask 077; : > metrics); }} && stat -c %s {names} && cat {names}; "
        f"elif read -r c < exitcode; then printf '{empty}%s\\n%s\\n' $((${{#c}} + 1)) \"$c\"; "
        f"else printf '{empty}0\\n'; fi"
    )
    if download is False:
        return script
    skip = "|".join(_case_pattern(p) for p in exclude) or "''"
    prune = "\\( " + " -o ".join(f"-path {_q('./' + p)}" for p in exclude) + " \\) -prune -o " if exclude else ""
    match = ""
    if isinstance(download, list):  # find's -path: `*` matches `/` too, so *.csv finds them at any depth
        match = "\\( " + " -o ".join(f"-path {_q('./' + glob.lstrip('/'))}" for glob in download) + " \\) "
    # A glob per name in the data dir (a shell builtin) tells whether anything is there to send.
    return (
        f"{script} && cd {_q(str(paths.data))} 2>/dev/null && has= && "
        f'for f in * .[!.]* ..?*; do case "$f" in {skip}) ;; *) [ -e "$f" ] && has=1 ;; esac; done; '
        f'if [ -n "$has" ]; then find . {prune}-type f {match}-print0 | tar -cf - --null -T - 2>/dev/null; fi; true'
    )


def _literal(name: str) -> str:
    """A pattern (of `case` and of find's -path alike) that matches this name alone: each glob
    character in a bracket of its own."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _case_pattern(pattern: str) -> str:
    """pattern as a `case` pattern: glob characters work, every other character is literal."""
    return "".join(c if c.isalnum() or c in "*?[]" else "\\" + c for c in pattern)


def follow(path: PurePosixPath, pid: int, offset: int, lines: int | None, until_end: bool) -> str:
    """Print a file of a running attempt from byte `offset` (or its last `lines` lines); with
    until_end, go on printing as it grows (tail wakes on writes) and end once the launcher `pid`
    is gone, after its last bytes."""
    start_at = f"-n {int(lines)}" if lines is not None else f"-c +{int(offset) + 1}"
    then = f"-s 0.5 --pid={int(pid)} -F" if until_end else ""
    return f"exec tail {start_at} {then} {_q(str(path))} 2>/dev/null"


def read_file(path: PurePosixPath, limit: int = 4096) -> str:
    """Print the first `limit` bytes of a file; exit non-zero when it does not exist."""
    return f"head -c {int(limit)} {_q(str(path))} 2>/dev/null"


def append(path: PurePosixPath) -> str:
    """Append stdin to a file (made private if new); say why on stdout and exit non-zero when it
    cannot (its folder gone: the attempt has ended there; not a regular file: a FIFO the job made
    there would hold the command, and a session of the connection, until someone reads it)."""
    p = _q(str(path))
    return f'umask 077; if [ -e {p} ] && [ ! -f {p} ]; then echo "not a regular file"; exit 1; fi; cat >> {p} 2>&1'


def read_end(path: PurePosixPath) -> str:
    """Print an exitcode file's mtime (whole seconds since the epoch) on a line, then the file;
    exit non-zero when it does not exist."""
    return f"stat -c %Y {_q(str(path))} 2>/dev/null && head -c {EXIT_CODE_LIMIT} {_q(str(path))}"


def carriers(identity: dict[str, str]) -> str:
    """Print the pids of the live processes of this user whose environment carries `identity`
    (an attempt's IDENTITY_ENV): what a job's `setsid cmd &` left outside its process group. The
    pipeline itself runs without the job's name, so it never finds itself."""
    ordered = sorted(identity.items(), key=lambda kv: kv[0] != "HYPERCTL_JOB_NAME")  # the rarest first
    greps = " | xargs -r ".join(
        f"grep -lzxF {_q(f'{k}={v}')}" + (" /proc/[0-9]*/environ" if i == 0 else "") + " 2>/dev/null"
        for i, (k, v) in enumerate(ordered)
    )
    return f"env -u HYPERCTL_JOB_NAME sh -c {_q(greps + ' | cut -d/ -f3')}"


def kill(pgid: int, sig: int, identity: dict[str, str]) -> str:
    """Send sig to a whole process group, and to every process that left it but carries the
    attempt's identity; print nothing, whether or not they are still there."""
    # "kill -N -PGID": the spelling that dash, bash and /bin/kill all take for a group.
    return f"kill -{int(sig)} -{int(pgid)} 2>/dev/null; for p in $({carriers(identity)}); do kill -{int(sig)} $p; done"


def group_alive(pgid: int, identity: dict[str, str]) -> str:
    """Exit 0 when a live (not zombie) process of the process group is left, or one that left it
    but carries the attempt's identity; else 1."""
    return (
        f"ps -e -o pgid=,stat= | awk '$1 == {int(pgid)} && $2 !~ /^Z/' | grep -q . || "
        f'[ -n "$({carriers(identity)})" ]'
    )


def mirror(files: list[tuple[PurePosixPath, int]], file_limit: int, total_limit: int) -> str:
    """Print the new bytes of running attempts' files, each from its offset (what is home of it
    already): for each file grown past it, a line `INDEX LENGTH`, then LENGTH bytes (at most
    file_limit, and total_limit for all); missing files and those not grown print nothing. One
    stat for every file: only grown ones cost more."""
    cases = " ".join(f"{_q(str(path))}) i={i} o={int(offset)};;" for i, (path, offset) in enumerate(files))
    words = " ".join(_q(str(path)) for path, _ in files)
    return (
        f"b={int(total_limit)}; stat -c '%s %n' -- {words} 2>/dev/null | while read -r s f; do "
        f'case "$f" in {cases} *) continue;; esac; '
        f'[ "$s" -gt "$o" ] || continue; n=$((s - o)); [ $n -le {int(file_limit)} ] || n={int(file_limit)}; '
        "[ $n -le $b ] || n=$b; [ $n -gt 0 ] || break; b=$((b - n)); "
        'echo "$i $n"; tail -c +$((o + 1)) -- "$f" | head -c $n; done'
    )


def ping() -> str:
    """Exit 0 at once: the liveness check of a connection (a silent host never answers)."""
    return "true"


USAGE_GPU_QUERY = "--query-gpu=index,utilization.gpu,memory.used,memory.total --format=csv,noheader,nounits"
USAGE_APPS_QUERY = "--query-compute-apps=pid,used_memory --format=csv,noheader,nounits"


def usage(sessions: Iterable[int]) -> str:
    """Print what the processes of the sessions (attempts' pids: each leads one) and the GPUs use
    now, run with the machine's environment (env_line() on stdin: its PATH may be where nvidia-smi
    is). Lines: `@clock CLK_TCK PAGESIZE UPTIME`; then /proc/PID/stat of each process of the
    sessions; then, where there is an nvidia-smi, `@gpus`, its GPU lines (or its error), `@smi
    EXIT`, and its compute apps. web/remoteuse.py reads it."""
    match = " || ".join(f"$2 == {int(s)}" for s in sessions) or "0"
    return (
        "IFS= read -r _hc_env; _hc_nl='\n'; eval \"$_hc_env\"; "
        'echo "@clock $(getconf CLK_TCK) $(getconf PAGESIZE) $(cut -d" " -f1 /proc/uptime)"; '
        f"for p in $(ps -e -o pid=,sid= | awk {_q(f'{match} {{print $1}}')}); do cat /proc/$p/stat 2>/dev/null; done; "
        "if command -v nvidia-smi >/dev/null 2>&1; then echo @gpus; "
        f'nvidia-smi {USAGE_GPU_QUERY} 2>&1; echo "@smi $?"; nvidia-smi {USAGE_APPS_QUERY} 2>/dev/null; fi; true'
    )
